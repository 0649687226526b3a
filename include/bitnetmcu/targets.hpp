// The chips the engine targets (SPEC §7), in one table. Everything else reads it: the firmware
// build through cmake/bitnetmcu_targets.cmake (-march, the linker's flash/RAM sizes, size
// reports, benchmarks), the exporter's fit check (kTargets), and the sweep's budgets
// (python/bitnetmcu_sweep/spec.py). CMake and Python parse the rows below: keep one chip per
// line, exactly in this form. The ctest "repo: chip facts come from targets.hpp" checks them.
#pragma once
#include <stddef.h>

namespace bitnetmcu {

struct Target {
  const char* name;
  const char* march;  // -march of its firmware build: RV32EC has no multiply instruction
  size_t flash_bytes;
  size_t ram_bytes;
  bool has_multiplier;
};

constexpr Target kCh32v003{"ch32v003", "rv32ec", 16384, 2048, false};
constexpr Target kCh32v002{"ch32v002", "rv32emc", 16384, 4096, true};
constexpr Target kTargets[] = {kCh32v003, kCh32v002};

}  // namespace bitnetmcu
