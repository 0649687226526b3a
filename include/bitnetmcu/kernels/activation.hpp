// ShiftNorm + ReLU and argmax (SPEC §6).
#pragma once
#include <stdint.h>

namespace bitnetmcu {

// Number of significant bits of v (0 for 0).
constexpr uint32_t bit_length(uint32_t v) {
  uint32_t n = 0;
  while (v) {
    ++n;
    v >>= 1;
  }
  return n;
}

// Shift that brings the largest accumulator into 7 bits: bit_length(max(m, 0) >> 7).
// Pointer do-loops: at -Os GCC keeps indexed or top-tested loops as written (two or three more
// instructions per value on RV32EC).
inline uint32_t shiftnorm_shift(const int32_t* acc, uint32_t n) {
  int32_t m = 0;
  if (n == 0) return 0;
  const int32_t* const end = acc + n;
  do {
    if (*acc > m) m = *acc;
  } while (++acc != end);
  return bit_length(static_cast<uint32_t>(m) >> 7);
}

// out[o] = acc[o] < 0 ? 0 : min(127, (acc[o] + round) >> shift). `out` may alias `acc`
// (the int8 result of output o lands at byte o, never on an int32 not yet read).
inline void shiftnorm_relu(const int32_t* acc, uint32_t n, int8_t* out) {
  const uint32_t shift = shiftnorm_shift(acc, n);
  const uint32_t round = (1u << shift) >> 1;
  if (n == 0) return;
  const int32_t* const end = acc + n;
  do {
    const int32_t v = *acc;
    // unsigned: v + round cannot overflow even for v near INT32_MAX
    uint32_t q = v < 0 ? 0u : ((static_cast<uint32_t>(v) + round) >> shift);
    if (q > 127) q = 127;
    *out++ = static_cast<int8_t>(q);
  } while (++acc != end);
}

// Index of the first maximum.
inline uint32_t argmax(const int32_t* v, uint32_t n) {
  uint32_t best = 0;
  for (uint32_t i = 1; i < n; ++i)
    if (v[i] > v[best]) best = i;
  return best;
}

}  // namespace bitnetmcu
