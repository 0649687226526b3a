#!/usr/bin/env bash
# Trains, exports and verifies the model zoo into modeldata/ (README "Model zoo"), then
# regenerates the results table and plot (scripts/zoo_table.py). Long: run it in the background.
#
#   scripts/zoo.sh                  # every model, ZOO_EPOCHS (default 60) epochs each
#   ZOO_ONLY="fc_4bitsym fc_nf4" scripts/zoo.sh
#   ZOO_EPOCHS=30 ZOO_CNN_EPOCHS=20 scripts/zoo.sh
#   ZOO_ONLY=cancer_fc ZOO_NO_TABLE=1 scripts/zoo.sh   # train + export only, table untouched
#
# Checkpoints go to modeldata/zoo/; one that exists is resumed (a finished one is left as it
# is: delete it to retrain). Needs a built tree (scripts/setup.sh).
set -euo pipefail
if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then  # usage: this line, then the comment above
  echo 'usage: [ZOO_ONLY="name ..."] [ZOO_EPOCHS=n] [ZOO_CNN_EPOCHS=n] [ZOO_NO_TABLE=1] scripts/zoo.sh'
  sed -n '2,/^[^#]/{/^#/s/^# \{0,1\}//p}' "${BASH_SOURCE[0]}"
  exit 0
fi
shopt -s nullglob
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$ROOT/build}"
EPOCHS="${ZOO_EPOCHS:-60}"
CNN_EPOCHS="${ZOO_CNN_EPOCHS:-$EPOCHS}"
TRAIN="$BUILD_DIR/training/bitnetmcu-train"
EXPORT="$BUILD_DIR/training/exporter/bitnetmcu-export"
log() { printf '\033[1m[zoo]\033[0m %s\n' "$*"; }
for tool in "$TRAIN" "$EXPORT"; do
  [ -x "$tool" ] || { echo "zoo: $tool not found: build first (scripts/setup.sh)" >&2; exit 1; }
done

# name | target chip ("-": none, host and QEMU twin only) | trainer overrides (SPEC §9 sizes: ~12 KB at ~100 kbit of weights).
# FC models train with Muon (0.1-0.4 pp over Adam, README) except fc_binary (Muon 98.5 %, Adam
# 98.8 %); the CNNs keep the reference's Adam.
MODELS=(
  "fc_binary|ch32v003|QuantType=Binary network_width1=176 network_width2=160 network_width3=160"
  "fc_ternary|ch32v003|optimizer=Muon QuantType=Ternary network_width1=128 network_width2=128 network_width3=112"
  "fc_2bitsym|ch32v003|optimizer=Muon QuantType=2bitsym network_width1=112 network_width2=96 network_width3=96"
  "fc_4bitsym|ch32v003|optimizer=Muon QuantType=4bitsym network_width1=64 network_width2=64 network_width3=64"
  "fc_4bit|ch32v003|optimizer=Muon QuantType=4bit network_width1=64 network_width2=64 network_width3=64"
  "fc_8bit|ch32v002|optimizer=Muon QuantType=8bit network_width1=40 network_width2=32 network_width3=32"
  "fc_fp130|ch32v003|optimizer=Muon QuantType=FP130 network_width1=64 network_width2=64 network_width3=64"
  "fc_nf4|ch32v003|optimizer=Muon QuantType=NF4 network_width1=64 network_width2=64 network_width3=64"
  # ~1 KB: without augmentation (a 4,800-weight model is capacity-bound: 94.5 % without, 90.8 % with)
  "fc_tiny_2bitsym|ch32v003|optimizer=Muon QuantType=2bitsym network_width1=16 network_width2=16 network_width3=16 augmentation=false"
  # the same with 120 epochs: the best <= 1.2 KB model of sweeps/tiny_1k_recipe.yaml (run 16d42a34b1,
  # modeldata/zoo/fc_tiny_2bitsym_e120.sweep.json; bitnetmcu-sweep --export-best; 200 epochs: 94.99 %)
  "fc_tiny_2bitsym_e120|ch32v003|optimizer=Muon augmentation=false num_threads=1 QuantType=2bitsym network_width1=16 network_width2=16 network_width3=16 num_epochs=120"
  # the widest FP130-conv CNN whose channel block fits the CH32V003's 2 KB RAM (one thread: reproducible)
  "cnn24_v003|ch32v003|model=CNNMNIST cnn_width=24 QuantType=4bitsym QuantType_conv1=FP130 QuantType_conv2=FP130 QuantType_conv3=FP130 network_width1=96 network_width2=64 network_width3=0 num_threads=1"
  "cnn16_v003|ch32v003|model=CNNMNIST cnn_width=16 QuantType=4bitsym QuantType_conv1=FP130 QuantType_conv2=FP130 QuantType_conv3=FP130 network_width1=96 network_width2=64 network_width3=0"
  "cnn16|ch32v002|model=CNNMNIST cnn_width=16 QuantType=4bitsym network_width1=96 network_width2=64 network_width3=0"
  # <= 1.2 KB of weights (issue 12's frontier): tiny CNNs from sweeps/tiny_cnn_1k.yaml (runs 792d73f068 and
  # f215ef342a, modeldata/zoo/<name>.sweep.json): 12 channels, fc 32/16, 8bit or FP130 convs
  "cnn12_1k|ch32v003|model=CNNMNIST QuantType=4bitsym QuantType_fc1=2bitsym network_width3=0 num_epochs=40 num_threads=1 cnn_width=12 network_width1=32 network_width2=16 augmentation=true"
  "cnn12_1k_fp130|ch32v003|model=CNNMNIST QuantType=4bitsym QuantType_fc1=2bitsym network_width3=0 num_epochs=40 num_threads=1 cnn_width=12 network_width1=32 network_width2=16 augmentation=true QuantType_conv1=FP130 QuantType_conv2=FP130 QuantType_conv3=FP130"
  # the CH32V003 with 8bit convs (signed-digit shifts and adds on RV32EC): <= 4 KB of weights (32 channels,
  # fc 48/48; sweeps/cnn_frontier.yaml run 518945e204) and <= 8 KB (cnn64, fc 64/64 = 8,192 B, 60 epochs,
  # Muon; sweeps/cnn_8k.yaml run 321fe07ff4)
  "cnn32_4k|ch32v003|model=CNNMNIST QuantType=4bitsym network_width3=0 num_epochs=30 num_threads=1 cnn_width=32 network_width1=48 network_width2=48"
  "cnn64_8k|ch32v003|model=CNNMNIST QuantType=4bitsym cnn_width=64 network_width2=64 network_width3=0 num_epochs=60 optimizer=Muon num_threads=1 network_width1=64"
  # cnn64 with fc1 88 (fits the 16 KB flash of both chips), 60 epochs, Muon: sweeps/cnn_v002.yaml run
  # eb54f207b3 (Adam: 99.44 %); its chip images for the CH32V003 and CH32V002 are both built
  "cnn64_fc88|ch32v002|model=CNNMNIST QuantType=4bitsym cnn_width=64 network_width1=88 network_width2=64 network_width3=0 num_epochs=60 num_threads=1 optimizer=Muon"
  # the CH32V002 (4 KB RAM: a 96-channel CNN block): 96 channels, fc1 Ternary 64, 60 epochs, Muon, and the
  # moving average of the weights (ema_decay 0.999; without it the same trained weights give 99.54 %,
  # sweeps/cnn_v002_wide.yaml run da9cafeb9f): sweeps/ema_cnn_v002.yaml run 5098054b7a
  "cnn96_v002|ch32v002|model=CNNMNIST QuantType=4bitsym QuantType_fc1=Ternary cnn_width=96 network_width1=64 network_width2=64 network_width3=0 optimizer=Muon num_threads=1 num_epochs=60 ema_decay=0.999"
  # fc_4bitsym's recipe distilled from cnn64_fc88 (above: the teacher is trained first), weight 0.9,
  # temperature 2, 90 epochs: sweeps/fc12k_distill.yaml run ca5a927f59
  "fc_4bitsym_kd|ch32v003|optimizer=Muon QuantType=4bitsym network_width1=64 network_width2=64 network_width3=64 num_threads=1 distill_teacher=modeldata/zoo/cnn64_fc88_CNNMNIST_4bitsym_RMS_w88_64_0_cnn64_Muon_e60.pt distill_weight=0.9 distill_temperature=2 num_epochs=90"
  # fc_4bitsym's recipe trained to leave most hidden activations at zero (activation_sparsity 0.5): the
  # engine skips zero inputs, so it runs in ~55k instructions instead of ~71k, at ~0.3 pp less accuracy
  # (sweeps/sparse_fc12k.yaml run 0c3b3d121d)
  "fc_4bitsym_sparse|ch32v003|optimizer=Muon QuantType=4bitsym network_width1=64 network_width2=64 network_width3=64 num_threads=1 num_epochs=60 activation_sparsity=0.5"
  # 30 epochs and one thread: what fitted this session's time on 2 shared cores (2 threads spin when loaded).
  # No chip ("-"): with the streamed CNN block (~250 B more code for 8bit convs) its firmware is
  # 204 B over the 16 KB flash; it fits the CH32V003's RAM now, so fc1 88 wide would fit both chips.
  "cnn64|-|model=CNNMNIST cnn_width=64 QuantType=4bitsym network_width1=96 network_width2=64 network_width3=0 num_epochs=30 num_threads=1"
  # Your own data (README "Your own data"): Fashion-MNIST (Debian dataset-fashion-mnist) and
  # scikit-learn's breast-cancer CSV (python3-sklearn), exported with their own test samples.
  "fashion_fc|ch32v003|dataset=FashionMNIST optimizer=Muon QuantType=4bitsym network_width1=64 network_width2=64 network_width3=64 num_epochs=20 num_threads=1"
  # 20x20 input (3x3 final planes; the streamed CNN block fits it in 2 KB), 8bit convs (through
  # the software multiply: 89.5 % with FP130), 22 channels (24 overflow the RAM by 48 B), Muon,
  # no augmentation (the checkpoint was trained as runtag c22a_ with this recipe)
  "fashion_cnn22_v003|ch32v003|dataset=FashionMNIST model=CNNMNIST input_side=20 cnn_width=22 QuantType=4bitsym network_width1=64 network_width2=64 network_width3=0 optimizer=Muon num_epochs=45 augmentation=false num_threads=1"
  "cancer_fc|ch32v003|dataset=csv data_train=/usr/lib/python3/dist-packages/sklearn/datasets/data/breast_cancer.csv csv_skip_rows=1 csv_header=false label_column=-1 class_names=malignant,benign network_width1=32 network_width2=16 network_width3=0 augmentation=false num_epochs=60 batch_size=32 num_threads=1"
)

cd "$ROOT"
mkdir -p modeldata
failed=()
for entry in "${MODELS[@]}"; do
  IFS='|' read -r name target overrides <<<"$entry"
  if [ -n "${ZOO_ONLY:-}" ] && [[ " $ZOO_ONLY " != *" $name "* ]]; then continue; fi
  epochs="$EPOCHS"
  [[ "$name" == cnn* ]] && epochs="$CNN_EPOCHS"
  sets=(--set "num_epochs=$epochs" --set "runtag=${name}_" --set "output_dir=modeldata/zoo")
  for kv in $overrides; do sets+=(--set "$kv"); done
  ckpt_glob=(modeldata/zoo/"${name}"_FCMNIST_*.pt modeldata/zoo/"${name}"_CNNMNIST_*.pt)
  if [ ${#ckpt_glob[@]} -gt 0 ]; then
    log "$name: ${ckpt_glob[0]} exists: resuming (nothing to do if it finished)"
    "$TRAIN" --resume "${ckpt_glob[0]}" --no-progress
  else
    log "$name: training ($epochs epochs)"
    "$TRAIN" trainingparameters.yaml "${sets[@]}" --no-progress
  fi
  ckpt_glob=(modeldata/zoo/"${name}"_FCMNIST_*.pt modeldata/zoo/"${name}"_CNNMNIST_*.pt)
  log "$name: exporting ${ckpt_glob[0]} for $target"
  samples=()
  [[ " $overrides " == *" dataset="* ]] && samples=(--samples 200)  # their own firmware test samples
  target_arg=(--target "$target")
  [ "$target" = "-" ] && target_arg=()  # no chip: host and QEMU twin only
  "$EXPORT" "${ckpt_glob[0]}" --name "$name" --out-dir modeldata "${target_arg[@]}" --plots --quiet "${samples[@]}" ||
    failed+=("$name")
done
[ ${#failed[@]} -eq 0 ] || log "export FAILED for: ${failed[*]} (see above); the table shows the others"

[ -n "${ZOO_NO_TABLE:-}" ] && exit 0  # e.g. ZOO_ONLY=... ZOO_NO_TABLE=1: train and export only
log "results table and plot"
/usr/bin/python3 "$ROOT/scripts/zoo_table.py" --build-dir "$BUILD_DIR"
