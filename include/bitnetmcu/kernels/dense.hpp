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

// t[c] = decode(c) * a for every code, with constant shift-and-add chains.
template <class S, uint8_t C = 0>
inline void fill_table_generic(int32_t a, int32_t* t) {
  t[C] = mul_const<S::decode(C)>(a);
  if constexpr (C + 1 < (1u << S::code_bits)) fill_table_generic<S, C + 1>(a, t);
}

template <class S>
inline void fill_table(int32_t a, int32_t* t) {
  if constexpr (S::id == SchemeId::Sym2 || S::id == SchemeId::Sym4) {
    // [sign | mag] -> +-(2 mag + 1) a: odd multiples by repeated addition, then negations.
    constexpr uint32_t half = 1u << (S::code_bits - 1);
    const int32_t two_a = a + a;
    int32_t v = a;
#pragma GCC unroll 8
    for (uint32_t m = 0; m < half; ++m, v += two_a) {
      t[m] = v;
      t[half + m] = -v;
    }
  } else {
    fill_table_generic<S>(a, t);
  }
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

// Four nonzero inputs per pass: each accumulator is loaded and stored once per four weights,
// and the per-input overhead (call, tables) is paid once per group. A short group is padded
// with inputs of value 0 (their tables are all zero), so only this one unrolled body exists.
constexpr uint32_t kGroup = 4;

// Byte offset (code * 4) of code J of a word, most significant code first: one shift and one
// mask, so that with the table base in a register a lookup is srl, and, add, lw.
template <unsigned Bits, unsigned J>
constexpr uint32_t code_offset(uint32_t w) {
  constexpr int shift = 30 - static_cast<int>(Bits * (J + 1));
  constexpr uint32_t mask = ((1u << Bits) - 1u) << 2;
  if constexpr (shift >= 0)
    return (w >> shift) & mask;
  else
    return (w << -shift) & mask;
}
template <uint32_t TableBytes>
inline int32_t lookup(const int32_t* t, uint32_t offset) {
  return *reinterpret_cast<const int32_t*>(reinterpret_cast<const uint8_t*>(t) + TableBytes + offset);
}

template <unsigned Bits, unsigned J = 0>
inline void add_group_word(uint32_t w0, uint32_t w1, uint32_t w2, uint32_t w3, const int32_t* t, int32_t* acc) {
  constexpr uint32_t tb = 4u << Bits;  // bytes per table
  acc[J] += lookup<0>(t, code_offset<Bits, J>(w0)) + lookup<tb>(t, code_offset<Bits, J>(w1)) +
            lookup<2 * tb>(t, code_offset<Bits, J>(w2)) + lookup<3 * tb>(t, code_offset<Bits, J>(w3));
  if constexpr (J + 1 < 32 / Bits) add_group_word<Bits, J + 1>(w0, w1, w2, w3, t, acc);
}

// Out of line so that on RV32E (12 usable registers) the loop's values all stay in registers.
template <unsigned Bits>
__attribute__((noinline)) void add_group_words(const uint32_t* const* cols, uint32_t n_words, const int32_t* t,
                                               int32_t* acc) {
  const uint32_t *c0 = cols[0], *c1 = cols[1], *c2 = cols[2], *c3 = cols[3];
  for (uint32_t k = 0; k < n_words; ++k, acc += 32 / Bits)
    add_group_word<Bits>(c0[k], c1[k], c2[k], c3[k], t, acc);
}

template <class S>
inline void column_group(const uint32_t* const* cols, const int32_t* a, uint32_t n_out, int32_t* acc) {
  constexpr uint32_t n = 1u << S::code_bits;
  int32_t t[kGroup * n];
  for (uint32_t k = 0; k < kGroup; ++k) fill_table<S>(a[k], t + k * n);
  constexpr uint32_t cpw = S::codes_per_word;
  const uint32_t full = n_out / cpw, o = full * cpw;
  add_group_words<S::code_bits>(cols, full, t, acc);
  if (o < n_out)
    for (uint32_t k = 0; k < kGroup; ++k)
      if (a[k]) add_word_codes_partial<S::code_bits>(cols[k][full], t + k * n, acc + o, n_out - o);
}

inline void column_ternary(const uint16_t* col, uint32_t n_out, int32_t a, int32_t* acc) {
  const int32_t t[3] = {a, -a, 0};
  for (uint32_t o = 0; o < n_out; o += 10) {
    uint32_t x = *col++;
    const uint32_t end = n_out - o < 10 ? n_out - o : 10;
    for (uint32_t j = 0; j < end; ++j) {
      x += x << 1;  // x *= 3: the integer part (bits 17..16) is the next trit
      acc[o + j] += t[x >> 16];
      x &= 0xFFFFu;
    }
  }
}

// Ten trits of two inputs' words, unrolled.
template <unsigned J = 0>
inline void add_trits2(uint32_t x1, uint32_t x2, const int32_t* t1, const int32_t* t2, int32_t* acc) {
  x1 += x1 << 1;
  x2 += x2 << 1;
  acc[J] += t1[x1 >> 16] + t2[x2 >> 16];
  if constexpr (J + 1 < 10) add_trits2<J + 1>(x1 & 0xFFFFu, x2 & 0xFFFFu, t1, t2, acc);
}
inline __attribute__((noinline)) void add_trit_words2(const uint16_t* c1, const uint16_t* c2, uint32_t n_words,
                                                      const int32_t* t1, const int32_t* t2, int32_t* acc) {
  for (uint32_t k = 0; k < n_words; ++k, acc += 10) add_trits2(c1[k], c2[k], t1, t2, acc);
}

inline void column_ternary2(const uint16_t* c1, const uint16_t* c2, uint32_t n_out, int32_t a1, int32_t a2,
                            int32_t* acc) {
  const int32_t t1[3] = {a1, -a1, 0}, t2[3] = {a2, -a2, 0};
  uint32_t full = 0, o = 0;
  while (o + 10 <= n_out) ++full, o += 10;  // n_out / 10 without a divide
  add_trit_words2(c1, c2, full, t1, t2, acc);
  if (o < n_out) {
    column_ternary(c1 + full, n_out - o, a1, acc + o);
    column_ternary(c2 + full, n_out - o, a2, acc + o);
  }
}

// 8bit with a multiplier.
inline void column_int8_mul(const uint32_t* col, uint32_t n_out, int32_t a, int32_t* acc) {
  for (uint32_t o = 0; o < n_out; o += 4) {
    uint32_t w = *col++;
    const uint32_t end = n_out - o < 4 ? n_out - o : 4;
    for (uint32_t j = 0; j < end; ++j, w <<= 8) acc[o + j] += mul_i32(a, static_cast<int32_t>(w) >> 24);
  }
}

// 8bit without one: w*a = hi(w)*16a + lo(w)*a, hi signed and lo unsigned nibble, from two
// 16-entry tables built by addition (~12 instructions per weight instead of a ~40-instruction
// software multiply on RV32EC).
inline void column_int8_tables(const uint32_t* col, uint32_t n_out, int32_t a, int32_t* acc) {
  int32_t lo[16], hi[16];
  int32_t v = 0;
  for (uint32_t k = 0; k < 16; ++k, v += a) lo[k] = v;
  const int32_t minus_128a = -shl(a, 7);
  for (uint32_t k = 0; k < 8; ++k) {
    hi[k] = shl(lo[k], 4);
    hi[k + 8] = hi[k] + minus_128a;  // (k - 8) * 16a
  }
  for (uint32_t o = 0; o < n_out; o += 4) {
    uint32_t w = *col++;
    const uint32_t end = n_out - o < 4 ? n_out - o : 4;
    for (uint32_t j = 0; j < end; ++j, w <<= 8) acc[o + j] += hi[w >> 28] + lo[(w >> 24) & 15u];
  }
}

inline void column_int8(const uint32_t* col, uint32_t n_out, int32_t a, int32_t* acc) {
#if defined(__riscv) && !defined(__riscv_mul)
  column_int8_tables(col, n_out, a, acc);
#else
  column_int8_mul(col, n_out, a, acc);
#endif
}

}  // namespace detail

// acc[o] = sum_i decode(W[o][i]) * (x[i] - x_offset); weights in pack_columns<S> layout.
template <class S>
void dense(const typename S::word_t* cols, uint32_t n_in, uint32_t n_out, const int8_t* x,
           int32_t x_offset, int32_t* acc) {
  for (uint32_t o = 0; o < n_out; ++o) acc[o] = 0;
  const uint32_t wpc = static_cast<uint32_t>(column_words<S>(n_out));
  if constexpr (S::id == SchemeId::Int8) {
    for (uint32_t i = 0; i < n_in; ++i, cols += wpc) {
      const int32_t a = static_cast<int32_t>(x[i]) - x_offset;
      if (a) detail::column_int8(cols, n_out, a, acc);
    }
  } else if constexpr (S::id == SchemeId::Ternary) {
    // Nonzero inputs in pairs.
    const uint16_t* pending = nullptr;
    int32_t pending_a = 0;
    for (uint32_t i = 0; i < n_in; ++i, cols += wpc) {
      const int32_t a = static_cast<int32_t>(x[i]) - x_offset;
      if (a == 0) continue;
      if (!pending) {
        pending = cols;
        pending_a = a;
      } else {
        detail::column_ternary2(pending, cols, n_out, pending_a, a, acc);
        pending = nullptr;
      }
    }
    if (pending) detail::column_ternary(pending, n_out, pending_a, acc);
  } else {
    // Nonzero inputs in groups of kGroup; the last group is padded with zero inputs.
    const uint32_t* group[detail::kGroup];
    int32_t group_a[detail::kGroup];
    uint32_t k = 0;
    for (uint32_t i = 0; i < n_in; ++i, cols += wpc) {
      const int32_t a = static_cast<int32_t>(x[i]) - x_offset;
      if (a == 0) continue;
      group[k] = cols;
      group_a[k] = a;
      if (++k == detail::kGroup) {
        detail::column_group<S>(group, group_a, n_out, acc);
        k = 0;
      }
    }
    if (k) {
      for (uint32_t j = k; j < detail::kGroup; ++j) {
        group[j] = group[0];
        group_a[j] = 0;
      }
      detail::column_group<S>(group, group_a, n_out, acc);
    }
  }
}

}  // namespace bitnetmcu
