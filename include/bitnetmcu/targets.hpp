// Budgets and attributes of the chips the engine targets (SPEC §7).
#pragma once
#include <stddef.h>

namespace bitnetmcu {

struct Target {
  const char* name;
  size_t flash_bytes;
  size_t ram_bytes;
  bool has_multiplier;
};

constexpr Target kCh32v003{"ch32v003", 16 * 1024, 2 * 1024, false};  // RV32EC
constexpr Target kCh32v002{"ch32v002", 16 * 1024, 4 * 1024, true};   // RV32EmC
constexpr Target kTargets[] = {kCh32v003, kCh32v002};

}  // namespace bitnetmcu
