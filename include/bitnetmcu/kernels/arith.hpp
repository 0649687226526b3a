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

// k * v for one k and many v, without a multiplier: k's canonical signed digits (non-adjacent
// form: at most 6 nonzero digits for |k| <= 256, ~1/3 of the bits on average) as two programs,
// the positive and the negative digits, each a list of 4-bit shift steps from the lowest digit
// up with a 1 above the last step. Applying one costs 5 instructions per digit on RV32EC, against
// ~6 per bit of |k| for mul_shift_add. Exact mod 2^32 like the hardware multiply.
struct MulProgram {
  uint32_t pos, neg;
};
constexpr MulProgram mul_program(int32_t k) {
  uint32_t pos = 0, neg = 0, pos_bits = 0, neg_bits = 0, pos_at = 0, neg_at = 0;
  for (uint32_t i = 0; k != 0; ++i, k >>= 1) {  // arithmetic shift: -1 >> 1 stays -1, so d ends it
    if ((k & 1) == 0) continue;
    const int32_t d = 2 - (k & 3);  // the digit +-1 that leaves k - d divisible by 4
    k -= d;
    if (d > 0)
      pos |= (i - pos_at) << pos_bits, pos_bits += 4, pos_at = i;
    else
      neg |= (i - neg_at) << neg_bits, neg_bits += 4, neg_at = i;
  }
  return {pos | (1u << pos_bits), neg | (1u << neg_bits)};
}
__attribute__((always_inline)) inline int32_t mul_by_program(int32_t v, MulProgram m) {
  uint32_t r = 0, t = static_cast<uint32_t>(v);
  for (uint32_t p = m.pos; p != 1; p >>= 4) r += (t <<= (p & 15));
  t = static_cast<uint32_t>(v);
  for (uint32_t p = m.neg; p != 1; p >>= 4) r -= (t <<= (p & 15));
  return static_cast<int32_t>(r);
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
