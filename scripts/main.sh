#!/usr/bin/env bash
# The README's first command: set up what is missing, then run the main job:
# train the default model (trainingparameters.yaml) -> export + verify on 10,000 test images
# -> build the CH32V003 firmware for it -> run its QEMU twin.
set -euo pipefail
if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then  # usage: this line, then the comment above
  echo 'usage: scripts/main.sh [bitnetmcu-train options, e.g. --set QuantType=FP130]'
  sed -n '2,/^[^#]/{/^#/s/^# \{0,1\}//p}' "${BASH_SOURCE[0]}"
  exit 0
fi
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/setup.sh"
exec "$ROOT/scripts/pipeline.sh" "$@"
