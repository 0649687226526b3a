// Multiplication-free integer arithmetic for targets without a multiplier (RV32EC).
#pragma once
#include <stdint.h>

namespace bitnetmcu {

// Left shift that is defined for negative values (two's complement wrap, like the hardware).
constexpr int32_t shl(int32_t v, unsigned s) {
  return static_cast<int32_t>(static_cast<uint32_t>(v) << s);
}

// a * K for a compile-time constant K, as a chain of shifts and adds/subtracts
// (canonical signed digits: runs of ones become one subtraction).
template <int32_t K>
constexpr int32_t mul_const(int32_t a) {
  if constexpr (K == 0) {
    return 0;
  } else if constexpr (K < 0) {
    return -mul_const<-K>(a);
  } else if constexpr (K % 2 == 0) {
    return shl(mul_const<K / 2>(a), 1);
  } else if constexpr (K % 4 == 1 || K == 1) {
    return mul_const<K - 1>(a) + a;
  } else {
    return mul_const<K + 1>(a) - a;
  }
}

// a * b for run-time values by shift-and-add over the bits of |b|. Used once per output
// (never per weight), so its ~5 instructions per bit of |b| do not matter.
constexpr int32_t mul_shift_add(int32_t a, int32_t b) {
  uint32_t ub = b < 0 ? 0u - static_cast<uint32_t>(b) : static_cast<uint32_t>(b);
  uint32_t ua = static_cast<uint32_t>(a);
  uint32_t r = 0;
  while (ub) {
    if (ub & 1u) r += ua;
    ua <<= 1;
    ub >>= 1;
  }
  return b < 0 ? static_cast<int32_t>(0u - r) : static_cast<int32_t>(r);
}

// Signed multiply that uses the hardware multiplier when the target has one and shift-and-add
// otherwise (RV32EC). For the schemes whose integer weights need a real multiply (8bit, conv).
inline int32_t mul_i32(int32_t a, int32_t b) {
#if defined(__riscv) && !defined(__riscv_mul)
  return mul_shift_add(a, b);
#else
  return a * b;
#endif
}

}  // namespace bitnetmcu
