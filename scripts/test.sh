#!/usr/bin/env bash
# The README's second command: set up what is missing, build, run every test with ctest.
set -euo pipefail
if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then  # usage: this line, then the comment above
  echo 'usage: scripts/test.sh [ctest options]'
  sed -n '2,/^[^#]/{/^#/s/^# \{0,1\}//p}' "${BASH_SOURCE[0]}"
  exit 0
fi
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$ROOT/build}"
"$ROOT/scripts/setup.sh"
status=0
ctest --test-dir "$BUILD_DIR" --output-on-failure -j "${JOBS:-$(nproc)}" "$@" || status=$?

# The sanitizer tree (issue 13): clang with ASan + UBSan (no recovery) in build-asan, running the
# engine, exporter and zoo tests, the Python module's tests (not the two that drive the C++
# tools and LibTorch training from Python) and every fuzz target over its corpus. The timed
# fuzzing runs (label "fuzz") are left to `ctest --test-dir build-asan -L fuzz`.
# SKIP_SANITIZE=1 skips this part.
if [ "${SKIP_SANITIZE:-0}" != 1 ]; then
  SAN_DIR="${SAN_BUILD_DIR:-$ROOT/build-asan}"
  echo "[test] sanitizer build in $SAN_DIR"
  CC=clang CXX=clang++ cmake -S "$ROOT" -B "$SAN_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DBITNETMCU_SANITIZE=ON -DBITNETMCU_BUILD_FUZZ=ON -DBITNETMCU_BUILD_FIRMWARE=OFF -DBITNETMCU_BUILD_BENCH=OFF \
    ${CMAKE_ARGS:-} >/dev/null
  cmake --build "$SAN_DIR" -j "${JOBS:-$(nproc)}" --target \
    engine_tests export_core_tests export_tests export_header_test shipped_models_test shipped_models_planes_test \
    fast_path_shipped_models_test bitnetmcu-export bitnetmcu_python \
    fuzz_model_file fuzz_checkpoint fuzz_idx fuzz_config
  ctest --test-dir "$SAN_DIR" --output-on-failure -j "${JOBS:-$(nproc)}" -LE '^fuzz$' \
    -R '^(engine:|export|zoo\.|fuzz\.|python\.(model|schemes|quant_parity|readme_example|hostile_inputs)$)' \
    || status=$?
fi
exit $status
