#!/usr/bin/env bash
# The published FC result (SPEC §9: FC 64/64/64 4bitsym, 60 epochs, augmentation, cosine, octav,
# batch 128 -> 99.02 %) over several seeds and both optimizers, as many runs at once as there are
# cores; prints each run's float test accuracy and the mean per optimizer. ~2 min per run.
#
#   scripts/reproduce.sh                       # seeds 1-4, Adam and Muon
#   SEEDS="1 2 3 4 5 6" OPTIMIZERS=Muon scripts/reproduce.sh
#
# Checkpoints, CSVs and logs go to $OUT (default modeldata/repro).
set -euo pipefail
if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then  # usage: this line, then the comment above
  echo 'usage: [SEEDS="1 2 3 4"] [OPTIMIZERS="Adam Muon"] [OUT=dir] scripts/reproduce.sh'
  sed -n '2,/^[^#]/{/^#/s/^# \{0,1\}//p}' "${BASH_SOURCE[0]}"
  exit 0
fi
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TRAIN="${BUILD_DIR:-$ROOT/build}/training/bitnetmcu-train"
OUT="${OUT:-$ROOT/modeldata/repro}"
SEEDS="${SEEDS:-1 2 3 4}"
OPTIMIZERS="${OPTIMIZERS:-Adam Muon}"
[ -x "$TRAIN" ] || { echo "reproduce: $TRAIN not found: build first (scripts/setup.sh)" >&2; exit 1; }
mkdir -p "$OUT"
cd "$ROOT"

run_one() {  # optimizer seed
  local log="$OUT/repro_$1_seed$2.log"
  "$TRAIN" trainingparameters.yaml --set num_epochs=60 --set optimizer="$1" --set seed="$2" \
    --set runtag="repro_seed$2_" --set output_dir="$OUT" --set num_threads=1 --no-progress >"$log" 2>&1 ||
    { echo "reproduce: run $1 seed $2 failed, see $log" >&2; return 1; }
}
export -f run_one
export TRAIN OUT
jobs_list=()
for opt in $OPTIMIZERS; do for seed in $SEEDS; do jobs_list+=("$opt $seed"); done; done
echo "reproduce: ${#jobs_list[@]} runs of 60 epochs, $(nproc) at a time; logs in $OUT"
printf '%s\n' "${jobs_list[@]}" | xargs -P "$(nproc)" -L 1 bash -c 'run_one "$0" "$1"'

for opt in $OPTIMIZERS; do
  accs=()
  for seed in $SEEDS; do
    acc=$(sed -n 's/.*test accuracy \([0-9.]*\) %.*/\1/p' "$OUT/repro_${opt}_seed$seed.log" | tail -n 1)
    accs+=("$acc")
    printf '%-5s seed %-3s %s %%\n' "$opt" "$seed" "$acc"
  done
  printf '%s\n' "${accs[@]}" | awk -v o="$opt" '{s+=$1; if(NR==1||$1<lo)lo=$1; if($1>hi)hi=$1}
    END {printf "%-5s mean %.2f %% over %d seeds (min %.2f, max %.2f); reference 99.02 %%\n", o, s/NR, NR, lo, hi}'
done
