// Fast dense layer (SPEC §6), bit-exact with dense_ref.
//
// Input-stationary over the column-major layout of layout.hpp: for every input that is not
// zero (after subtracting x_offset), build a small table of its multiples t[code] =
// decode(code) * a with shifts and adds, then add t[code] to the accumulator of every output
// whose code appears in that input's column words. Costs one table per nonzero input and a
// shift, a load and an add per weight; zero inputs (half of all after ReLU, and the image
// background when x_offset is the background value) cost nothing. No multiply for any scheme
// but 8bit.
#pragma once
#include <stdint.h>

#include "../layout.hpp"
#include "../schemes.hpp"
#include "arith.hpp"

namespace bitnetmcu {
namespace detail {

template <class S, uint8_t C = 0>
inline void fill_table(int32_t a, int32_t* t) {
  t[C] = mul_const<S::decode(C)>(a);
  if constexpr (C + 1 < (1u << S::code_bits)) fill_table<S, C + 1>(a, t);
}

// One full word of Bits-wide codes, unrolled: the next code is always the top Bits bits.
template <unsigned Bits, unsigned J = 0>
inline void add_word_codes(uint32_t w, const int32_t* t, int32_t* acc) {
  acc[J] += t[w >> (32 - Bits)];
  if constexpr (J + 1 < 32 / Bits) add_word_codes<Bits, J + 1>(w << Bits, t, acc);
}
template <unsigned Bits>
inline void add_word_codes_partial(uint32_t w, const int32_t* t, int32_t* acc, uint32_t count) {
  for (uint32_t j = 0; j < count; ++j, w <<= Bits) acc[j] += t[w >> (32 - Bits)];
}

template <class S>
inline void column_table(const uint32_t* col, uint32_t n_out, int32_t a, int32_t* acc) {
  int32_t t[1u << S::code_bits];
  fill_table<S>(a, t);
  constexpr uint32_t cpw = S::codes_per_word;
  uint32_t o = 0;
  for (; o + cpw <= n_out; o += cpw) add_word_codes<S::code_bits>(*col++, t, acc + o);
  if (o < n_out) add_word_codes_partial<S::code_bits>(*col, t, acc + o, n_out - o);
}

inline void column_ternary(const uint16_t* col, uint32_t n_out, int32_t a, int32_t* acc) {
  const int32_t t[3] = {a, -a, 0};
  for (uint32_t o = 0; o < n_out; o += 10) {
    uint32_t x = *col++;
    const uint32_t end = n_out - o < 10 ? n_out - o : 10;
    for (uint32_t j = 0; j < end; ++j) {
      x += x << 1;
      acc[o + j] += t[x >> 16];
      x &= 0xFFFFu;
    }
  }
}

inline void column_int8(const uint32_t* col, uint32_t n_out, int32_t a, int32_t* acc) {
  for (uint32_t o = 0; o < n_out; o += 4) {
    uint32_t w = *col++;
    const uint32_t end = n_out - o < 4 ? n_out - o : 4;
    for (uint32_t j = 0; j < end; ++j, w <<= 8)
      acc[o + j] += mul_i32(a, static_cast<int32_t>(w) >> 24);
  }
}

}  // namespace detail

// acc[o] = sum_i decode(W[o][i]) * (x[i] - x_offset); weights in pack_columns<S> layout.
template <class S>
void dense(const typename S::word_t* cols, uint32_t n_in, uint32_t n_out, const int8_t* x,
           int32_t x_offset, int32_t* acc) {
  for (uint32_t o = 0; o < n_out; ++o) acc[o] = 0;
  const uint32_t wpc = static_cast<uint32_t>(column_words<S>(n_out));
  for (uint32_t i = 0; i < n_in; ++i, cols += wpc) {
    const int32_t a = static_cast<int32_t>(x[i]) - x_offset;
    if (a == 0) continue;
    if constexpr (S::id == SchemeId::Ternary)
      detail::column_ternary(cols, n_out, a, acc);
    else if constexpr (S::id == SchemeId::Int8)
      detail::column_int8(cols, n_out, a, acc);
    else
      detail::column_table<S>(cols, n_out, a, acc);
  }
}

}  // namespace bitnetmcu
