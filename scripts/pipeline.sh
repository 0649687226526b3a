#!/usr/bin/env bash
# The whole pipeline on the default configuration (trainingparameters.yaml):
#   1. train it for a few epochs (PIPELINE_EPOCHS, default 3)    -> modeldata/<run>.pt
#   2. export + verify on the 10,000 MNIST test images              -> modeldata/<run>.h (+ .bnm,
#      .report.json, SVG plots); fails if the engine and the LibTorch integer emulation disagree
#      on any image, or if the model does not fit the CH32V003
#   3. if the firmware build is configured: build it and run the model's QEMU twin
#   4. print where the header is.
# Extra arguments go to bitnetmcu-train (e.g. --set QuantType=FP130).
# Expects a configured and built tree in BUILD_DIR (scripts/setup.sh makes one).
set -euo pipefail
if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then  # usage: this line, then the comment above
  echo 'usage: [PIPELINE_EPOCHS=n] [BUILD_DIR=dir] scripts/pipeline.sh [bitnetmcu-train options]'
  sed -n '2,/^[^#]/{/^#/s/^# \{0,1\}//p}' "${BASH_SOURCE[0]}"
  exit 0
fi
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$ROOT/build}"
EPOCHS="${PIPELINE_EPOCHS:-3}"
log() { printf '\033[1m[pipeline]\033[0m %s\n' "$*"; }

TRAIN="$BUILD_DIR/training/bitnetmcu-train"
EXPORT="$BUILD_DIR/training/exporter/bitnetmcu-export"
for tool in "$TRAIN" "$EXPORT"; do
  if [ ! -x "$tool" ]; then
    echo "pipeline: $tool not found: build first (scripts/setup.sh, or cmake --build $BUILD_DIR)" >&2
    exit 1
  fi
done

cd "$ROOT"
log "1/3 training the default model for $EPOCHS epochs (PIPELINE_EPOCHS overrides)"
train_log="$(mktemp)"
trap 'rm -f "$train_log"' EXIT
"$TRAIN" trainingparameters.yaml --set num_epochs="$EPOCHS" --no-progress "$@" | tee "$train_log"
checkpoint="$(sed -n 's/^done: \(.*\.pt\) (.*/\1/p' "$train_log" | tail -n 1)"
if [ -z "$checkpoint" ] || [ ! -f "$checkpoint" ]; then
  echo "pipeline: could not find the checkpoint in the trainer's output ('done: <path>.pt' line)" >&2
  exit 1
fi

name="$(basename "$checkpoint" .pt | tr -c 'A-Za-z0-9_\n' '_')"
log "2/3 exporting $checkpoint as $name and verifying it on the test set"
"$EXPORT" "$checkpoint" --name "$name" --out-dir modeldata --target ch32v003 --plots
header="$ROOT/modeldata/$name.h"

firmware_dir="$BUILD_DIR/mcu/firmware"
if [ -d "$firmware_dir" ] && command -v qemu-system-riscv32 >/dev/null 2>&1; then
  log "3/3 building the CH32V003 firmware for $name and running its QEMU twin"
  cmake "$BUILD_DIR" >/dev/null  # picks up the new modeldata/*.h
  cmake --build "$BUILD_DIR" --target bitnetmcu_firmware
  elf="$firmware_dir/$name-qemu.elf"
  if [ -f "$elf" ]; then
    twin_log="$(mktemp)"
    timeout 300 qemu-system-riscv32 -M virt -bios none -nographic -cpu rv32 -icount shift=0 \
      -semihosting-config enable=on,target=native -kernel "$elf" > "$twin_log" 2>&1 || true
    log "QEMU twin (RV32EC, instructions per inference from minstret):"
    head -n 6 "$twin_log"; echo "  ..."; tail -n 1 "$twin_log"; rm -f "$twin_log"
    for chip in ch32v003 ch32v002; do
      [ -f "$firmware_dir/$name-$chip.size.txt" ] && log "$(head -n 1 "$firmware_dir/$name-$chip.size.txt")"
    done
  else
    log "no QEMU twin at $elf (see $firmware_dir)"
  fi
else
  log "3/3 skipped: no firmware build in $firmware_dir (configure with -DBITNETMCU_BUILD_FIRMWARE=ON; needs gcc-riscv64-unknown-elf, qemu-system-misc)"
fi

log "model header: $header"
log "report:       $ROOT/modeldata/$name.report.json"
