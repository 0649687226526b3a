// Fast dense layer (SPEC §6), bit-exact with dense_ref.
//
// Input-stationary over the column layout of layout.hpp: for every input that is not zero
// (after subtracting x_offset), build a small table of its multiples t[code] = decode(code) * a
// with shifts and adds, then add t[code] to the accumulator of every output whose code appears
// in that input's column. A weight costs a shift, a mask, a load and an add; zero inputs (half
// of all after ReLU, and the image background when x_offset is the background value) cost
// nothing. Nonzero inputs are processed four at a time, so each accumulator is
// loaded and stored once per four weights. No multiply for any scheme but 8bit, and none for
// 8bit either on targets without a multiplier.
#pragma once
#include <stdint.h>

#include "../layout.hpp"
#include "../schemes.hpp"
#include "arith.hpp"

namespace bitnetmcu {
namespace detail {

// ---- tables of multiples ---------------------------------------------------------------------

// t[c] = decode(c) * a for every code, with constant shift-and-add chains.
template <class S, uint8_t C = 0>
inline void fill_table_generic(int32_t a, int32_t* t) {
  t[C] = mul_const<S::decode(C)>(a);
  if constexpr (C + 1 < (1u << S::code_bits)) fill_table_generic<S, C + 1>(a, t);
}

template <class S>
inline void fill_table(int32_t a, int32_t* t) {
  if constexpr (S::multiples == Multiples::OddMultiples) {
    // [sign | mag] -> +-(2 mag + 1) a: odd multiples by repeated addition, then negations.
    constexpr uint32_t half = 1u << (S::code_bits - 1);
    const int32_t two_a = a + a;
    int32_t v = a;
#pragma GCC unroll 8
    for (uint32_t m = 0; m < half; ++m, v += two_a) {
      t[m] = v;
      t[half + m] = -v;
    }
  } else if constexpr (S::multiples == Multiples::PowersOfTwo) {
    int32_t v = a;  // [sign | e] -> +-(a << e)
#pragma GCC unroll 8
    for (uint32_t e = 0; e < 8; ++e, v += v) {
      t[e] = v;
      t[8 + e] = -v;
    }
  } else if constexpr (S::multiples == Multiples::Integers) {
    constexpr uint32_t half = 1u << (S::code_bits - 1);
    int32_t v = 0, w = -shl(a, S::code_bits - 1);  // c -> c * a, c + half -> (c - half) * a
#pragma GCC unroll 8
    for (uint32_t c = 0; c < half; ++c, v += a, w += a) {
      t[c] = v;
      t[half + c] = w;
    }
  } else {
    fill_table_generic<S>(a, t);
  }
}

// int16 tables: for the 4-bit schemes whose multiples of an int8 input minus an int8 offset fit
// int16 (|decode| * 255 < 2^15: 4bitsym, FP130, 4bit) and are built by fill_table16.
template <class S>
constexpr bool int16_tables = S::family == DenseFamily::Nibble && S::max_abs * 255 < 32768 &&
                              (S::multiples == Multiples::OddMultiples || S::multiples == Multiples::PowersOfTwo ||
                               S::multiples == Multiples::Integers) &&
                              __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__;

// t[c] = decode(c) * a as int16, two entries per word (code 2j in the low half): 8 stores per
// table instead of 16. A word is hi * 65536 + lo exactly (E below, built for both lanes at once
// by adding or shifting E), plus 65536 when lo < 0 (the borrow the low half took from the high
// half). For a != 0 the low halves of one sign half share a sign: the positive codes' words
// need b = 65536 when a < 0, the negative codes' words 65536 - b, so a negative code's word is
// 65536 - (its positive twin's word). a = 0 (a padded group) takes zero_table16.
template <class S>
__attribute__((always_inline)) inline void fill_table16(int32_t a, uint32_t* w) {
  static_assert(int16_tables<S>, "int16 tables: 4bitsym, FP130, 4bit");
  const uint32_t ua = static_cast<uint32_t>(a);
  const uint32_t b = (ua >> 31) << 16;
  if constexpr (S::multiples == Multiples::OddMultiples) {
    // codes 2j, 2j+1 -> (4j+1) a, (4j+3) a; codes 8+2j, 9+2j -> their negations
    const uint32_t both = (ua << 16) + ua;  // a in both lanes
    const uint32_t step = both << 2;
    uint32_t e = both + (ua << 17) + b;  // (lo a, hi 3a) + correction
#pragma GCC unroll 4
    for (uint32_t j = 0; j < 4; ++j, e += step) {
      w[j] = e;
      w[4 + j] = 0x10000u - e;
    }
  } else if constexpr (S::multiples == Multiples::Integers) {
    // codes 2j, 2j+1 -> 2j a, (2j+1) a; codes 8+2j, 9+2j -> (2j-8) a, (2j-7) a. Low halves: 0 for
    // code 0, the sign of a for codes 2, 4, 6, the opposite sign for codes 8..14.
    const uint32_t both = (ua << 16) + ua, step = both << 1;
    const uint32_t hi = ua << 16;  // (lo 0, hi a): code 0's word
    w[0] = hi;
    uint32_t e = hi + step + b, n = hi - (both << 3) + (0x10000u - b);
#pragma GCC unroll 4
    for (uint32_t j = 1; j < 4; ++j, e += step) w[j] = e;
#pragma GCC unroll 4
    for (uint32_t j = 4; j < 8; ++j, n += step) w[j] = n;
  } else {
    // codes 2j, 2j+1 -> a << 2j, a << (2j+1); codes 8+2j, 9+2j -> their negations
    uint32_t e = (ua << 17) + ua;  // (lo a, hi 2a)
#pragma GCC unroll 4
    for (uint32_t j = 0; j < 4; ++j, e <<= 2) {
      w[j] = e + b;
      w[4 + j] = 0x10000u - b - e;
    }
  }
}
inline void zero_table16(uint32_t* w) {
  for (uint32_t j = 0; j < 8; ++j) w[j] = 0;
}

// ---- 1/2/4-bit codes: groups of four inputs ---------------------------------------------------

constexpr uint32_t kGroup = 4;

// Byte offset (code * entry size, 4 or 2 bytes: LogEntry 2 or 1) of code J of a word, most
// significant code first: one shift and one mask, so that with the table base in a register a
// lookup is srl, and, add, lw (lh).
template <unsigned Bits, unsigned J, unsigned LogEntry = 2>
constexpr uint32_t code_offset(uint32_t w) {
  constexpr int shift = 32 - static_cast<int>(LogEntry) - static_cast<int>(Bits * (J + 1));
  constexpr uint32_t mask = ((1u << Bits) - 1u) << LogEntry;
  if constexpr (shift >= 0)
    return (w >> shift) & mask;
  else
    return (w << -shift) & mask;
}
template <uint32_t TableBytes>
inline int32_t lookup(const int32_t* t, uint32_t offset) {
  return *reinterpret_cast<const int32_t*>(reinterpret_cast<const uint8_t*>(t) + TableBytes + offset);
}
// int16 entries, stored two per word by fill_table16 (read through a may_alias type).
typedef int16_t __attribute__((may_alias)) int16_alias_t;
template <uint32_t TableBytes>
inline int32_t lookup(const int16_t* t, uint32_t offset) {
  return *reinterpret_cast<const int16_alias_t*>(reinterpret_cast<const uint8_t*>(t) + TableBytes + offset);
}
template <class T>
constexpr unsigned log2_entry = sizeof(T) == 4 ? 2 : 1;

// Codes [0, Count) of one word of each of the four columns, unrolled. T: table entry type.
template <unsigned Bits, unsigned Count, class T, unsigned J = 0>
inline void add_group_codes(uint32_t w0, uint32_t w1, uint32_t w2, uint32_t w3, const T* t, int32_t* acc) {
  constexpr unsigned e = log2_entry<T>;
  constexpr uint32_t tb = sizeof(T) << Bits;  // bytes per table
  acc[J] += lookup<0>(t, code_offset<Bits, J, e>(w0)) + lookup<tb>(t, code_offset<Bits, J, e>(w1)) +
            lookup<2 * tb>(t, code_offset<Bits, J, e>(w2)) + lookup<3 * tb>(t, code_offset<Bits, J, e>(w3));
  if constexpr (J + 1 < Count) add_group_codes<Bits, Count, T, J + 1>(w0, w1, w2, w3, t, acc);
}

// Out of line so that on RV32E (12 usable registers) the loop's values stay in registers and
// the tables are addressed from one base register. The unrolled body covers at most 8 codes
// (a 4-bit word; 1- and 2-bit words take 4 and 2 passes, shifting the words): a 32-code body
// would cost ~2 KB of the CH32V003's 16 KB flash for 0.2 instructions per weight.
template <unsigned Bits, class T>
__attribute__((noinline)) void add_group_words(const uint32_t* const* cols, uint32_t n_words, const T* t,
                                               int32_t* acc) {
  constexpr unsigned per_pass = 32 / Bits < 8 ? 32 / Bits : 8;
  constexpr unsigned passes = 32 / Bits / per_pass;
  const uint32_t *c0 = cols[0], *c1 = cols[1], *c2 = cols[2], *c3 = cols[3];
  for (uint32_t k = 0; k < n_words; ++k) {
    uint32_t w0 = c0[k], w1 = c1[k], w2 = c2[k], w3 = c3[k];
    for (unsigned pass = 0; pass < passes; ++pass, acc += per_pass) {
      add_group_codes<Bits, per_pass, T>(w0, w1, w2, w3, t, acc);
      if constexpr (passes > 1) {
        w0 <<= per_pass * Bits, w1 <<= per_pass * Bits, w2 <<= per_pass * Bits, w3 <<= per_pass * Bits;
      }
    }
  }
}

// ---- tails: the last n_out % codes_per_word outputs ----------------------------------------

// The 32 bits of a packed stream from bit `bit` on, first code in the top bits. Reads the next
// word only when the codes wanted (`bits` of them) cross into it: it may be past the stream.
inline uint32_t stream_window(const uint32_t* words, uint32_t bit, uint32_t bits) {
  words += bit >> 5;
  const uint32_t s = bit & 31u;
  return s + bits > 32 ? (words[0] << s) | (words[1] >> (32 - s)) : words[0] << s;
}

// The tail codes of a group: win[k] = input k's tail codes at the top, `count` of them; every
// output gets its four weights in one accumulator update, like the full words. Pairs: t holds
// pair tables (below); a pair field adds two outputs, a last odd code uses entry c = (0, c),
// whose low lane is t[c] (the four high lanes add up to no more than 2^15 * 4: the sum's low
// half is exact).
template <unsigned Bits, bool Pairs, class T = int32_t>
__attribute__((noinline)) void add_group_tail(const uint32_t* win, uint32_t count, const T* t, int32_t* acc) {
  uint32_t w0 = win[0], w1 = win[1], w2 = win[2], w3 = win[3];
  if constexpr (Pairs) {
    constexpr uint32_t tb = 4u << (2 * Bits);
    for (; count >= 2; count -= 2, acc += 2, w0 <<= 2 * Bits, w1 <<= 2 * Bits, w2 <<= 2 * Bits, w3 <<= 2 * Bits) {
      const int32_t s = lookup<0>(t, code_offset<2 * Bits, 0>(w0)) + lookup<tb>(t, code_offset<2 * Bits, 0>(w1)) +
                        lookup<2 * tb>(t, code_offset<2 * Bits, 0>(w2)) + lookup<3 * tb>(t, code_offset<2 * Bits, 0>(w3));
      const int32_t lo = static_cast<int32_t>(static_cast<uint32_t>(s) << 16) >> 16;
      acc[0] += (s - lo) >> 16;
      acc[1] += lo;
    }
    if (count) {
      const int32_t s = lookup<0>(t, code_offset<Bits, 0>(w0)) + lookup<tb>(t, code_offset<Bits, 0>(w1)) +
                        lookup<2 * tb>(t, code_offset<Bits, 0>(w2)) + lookup<3 * tb>(t, code_offset<Bits, 0>(w3));
      acc[0] += static_cast<int32_t>(static_cast<uint32_t>(s) << 16) >> 16;
    }
  } else {
    constexpr unsigned e = log2_entry<T>;
    constexpr uint32_t tb = sizeof(T) << Bits;
    for (; count; --count, ++acc, w0 <<= Bits, w1 <<= Bits, w2 <<= Bits, w3 <<= Bits)
      acc[0] += lookup<0>(t, code_offset<Bits, 0, e>(w0)) + lookup<tb>(t, code_offset<Bits, 0, e>(w1)) +
                lookup<2 * tb>(t, code_offset<Bits, 0, e>(w2)) + lookup<3 * tb>(t, code_offset<Bits, 0, e>(w3));
  }
}

template <unsigned Bits, bool Pairs, class T = int32_t>
inline void group_tail(const int8_t* const* at, const int8_t* begin, ColumnShape shape, const uint32_t* tails, const T* t,
                       int32_t* acc) {
  constexpr unsigned log2_cpw = BitPacking<Bits>::log2_codes_per_word;
  constexpr unsigned log2_bits = BitPacking<Bits>::log2_code_bits;
  const uint32_t tail = static_cast<uint32_t>(shape.tail), tail_bits = tail << log2_bits;
  uint32_t win[kGroup];
  for (uint32_t k = 0; k < kGroup; ++k) {
    uint32_t bit = 0, v = static_cast<uint32_t>(at[k] - begin) << log2_bits;  // index * tail_bits, over the few bits of tail
    for (uint32_t m = tail; m; m >>= 1, v <<= 1)
      if (m & 1u) bit += v;
    win[k] = stream_window(tails, bit, tail_bits);
  }
  add_group_tail<Bits, Pairs, T>(win, tail, t, acc + (shape.full << log2_cpw));
}

// Finds the next kGroup nonzero inputs. A leaf function of its own: RV32E keeps only two
// registers across calls, so a scan loop sharing a function with the group kernel's call
// spills its pointers (20 instead of 9 instructions per skipped input). It records input
// indices, not tail positions: tracking those too would not fit the 12 registers either.
struct GroupScan {
  const int8_t* x;
  const int8_t* end;
  int32_t offset;
  const uint32_t* cols;  // column of *x
  uint32_t full;         // words per column
  const uint32_t* cols_k[kGroup];
  int32_t a_k[kGroup];
  const int8_t* at_k[kGroup];  // the input itself: its index is at_k - begin (needed for tails only)
};
// Advances x (and cols with it) past inputs equal to offset, stopping at end; returns *x.
// On RV32 the loop is written out: lb, bne, add, add, bne per skipped input (GCC's RV32E
// register allocation made it 8, moving copies and reloading a spilled stride).
__attribute__((always_inline)) inline int32_t skip_offset(const int8_t*& x, const int8_t* end, int32_t offset,
                                                          const uint32_t*& cols, uint32_t full) {
  int32_t v;
#if defined(__riscv) && __riscv_xlen == 32
  const uint32_t stride = full << 2;
  __asm__("1: lb %[v], 0(%[x])\n"
          "   bne %[v], %[off], 2f\n"
          "   addi %[x], %[x], 1\n"
          "   add %[c], %[c], %[stride]\n"
          "   bne %[x], %[end], 1b\n"
          "2:\n"
          : [v] "=&r"(v), [x] "+r"(x), [c] "+r"(cols)
          : [off] "r"(offset), [stride] "r"(stride), [end] "r"(end)
          : "memory");
#else
  while ((v = *x) == offset) {
    ++x, cols += full;
    if (x == end) break;
  }
#endif
  return v;
}

__attribute__((noinline)) inline uint32_t scan_group(GroupScan& s) {
  const int8_t* x = s.x;
  const int8_t* const end = s.end;
  const int32_t offset = s.offset;
  const uint32_t full = s.full;  // locals: the stores below may alias `s`
  const uint32_t* cols = s.cols;
  uint32_t k = 0;
  while (x != end) {
    const int32_t v = skip_offset(x, end, offset, cols, full);
    if (x == end) break;
    s.cols_k[k] = cols, s.a_k[k] = v - offset, s.at_k[k] = x;
    ++x, cols += full;
    if (++k == kGroup) break;
  }
  s.x = x, s.cols = cols;
  return k;
}

// A group: cols[k] = the full words of input k's column, a[k] its value (0 pads a short group),
// at[k] the input (its tail codes start at (at[k] - begin) * tail in the tail stream).
template <class S>
inline void column_group(const uint32_t* const* cols, const int32_t* a, const int8_t* const* at, const int8_t* begin, ColumnShape shape,
                         const uint32_t* tails, int32_t* acc) {
  constexpr uint32_t n = 1u << S::code_bits;
  if constexpr (int16_tables<S>) {
    uint32_t w[kGroup * n / 2];  // two int16 entries per word
    for (uint32_t k = 0; k < kGroup; ++k) {
      if (a[k])
        fill_table16<S>(a[k], w + k * (n / 2));
      else
        zero_table16(w + k * (n / 2));  // a padded group's zero inputs
    }
    const int16_t* t = reinterpret_cast<const int16_alias_t*>(w);
    add_group_words<S::code_bits>(cols, static_cast<uint32_t>(shape.full), t, acc);
    if (shape.tail) group_tail<S::code_bits, false>(at, begin, shape, tails, t, acc);
  } else {
    int32_t t[kGroup * n];
    for (uint32_t k = 0; k < kGroup; ++k) fill_table<S>(a[k], t + k * n);
    add_group_words<S::code_bits>(cols, static_cast<uint32_t>(shape.full), t, acc);
    if (shape.tail) group_tail<S::code_bits, false>(at, begin, shape, tails, t, acc);
  }
}

// ---- 1- and 2-bit codes: two outputs per lookup --------------------------------------------

// Binary and 2bitsym: a field of two codes (outputs 2j, 2j+1) indexes a pair table
// p[f] = (t[hi code] << 16) + t[lo code], so one lookup adds an input's weights of two outputs in
// two 16-bit lanes. The sum of a group's four lookups is added as it is to acc[j] (mod 2^32),
// two outputs per word, and split into int32 accumulators at the end of the layer
// (unpack_lane_pairs): 22 instructions per 8 weights on RV32EC. Exact while each lane's total
// stays within int16: the caller tracks max_abs * sum |a| (a lane never exceeds it) and past
// 32767 splits every group at once (add_group_tail, below 2^15: 4 inputs * 255 * 3).
// Packed lane pairs acc[j] (high lane: output 2j, low lane: 2j+1) -> int32 acc[2j], acc[2j+1],
// in place from the top down.
inline __attribute__((noinline)) void unpack_lane_pairs(int32_t* acc, uint32_t n_pairs) {
  for (uint32_t j = n_pairs; j-- > 0;) {
    const uint32_t s = static_cast<uint32_t>(acc[j]);
    const int32_t lo = static_cast<int32_t>(s << 16) >> 16;
    acc[2 * j + 1] = lo;
    acc[2 * j] = static_cast<int32_t>(s - static_cast<uint32_t>(lo)) >> 16;
  }
}

// p[h * codes + l] = (t[h] << 16) + t[l]. For 2-bit codes the four row heads are h0, h1 = 3 h0 and
// their negations, each row head + {a, 3a, -a, -3a}: 6 instructions of set-up and an add and a
// store per entry (GCC, given the generic double loop, recomputed shifted negations per row).
template <class S>
__attribute__((always_inline)) inline void fill_pair_table(int32_t a, int32_t* p) {
  static_assert(S::family == DenseFamily::PairBits, "pair tables: 1- and 2-bit codes");
  if constexpr (S::code_bits == 2) {
    static_assert(S::multiples == Multiples::OddMultiples, "2-bit pair tables: [sign | mag] codes");
    const int32_t a3 = a + a + a;  // [sign | mag] -> +-(2 mag + 1) a: t = {a, 3a, -a, -3a}
    const int32_t head[4] = {shl(a, 16), shl(a3, 16), -shl(a, 16), -shl(a3, 16)};
#pragma GCC unroll 4
    for (uint32_t h = 0; h < 4; ++h, p += 4) p[0] = head[h] + a, p[1] = head[h] + a3, p[2] = head[h] - a, p[3] = head[h] - a3;
  } else {
    const int32_t t0 = mul_const<S::decode(0)>(a), t1 = mul_const<S::decode(1)>(a);  // Binary: -a, a
    const int32_t h0 = shl(t0, 16), h1 = shl(t1, 16);
    p[0] = h0 + t0, p[1] = h0 + t1, p[2] = h1 + t0, p[3] = h1 + t1;
  }
}

template <unsigned FieldBits, unsigned Count, unsigned J = 0>
inline void add_group_pair_fields(uint32_t w0, uint32_t w1, uint32_t w2, uint32_t w3, const int32_t* p, int32_t* acc) {
  constexpr uint32_t tb = 4u << FieldBits;  // bytes per pair table
  const uint32_t s = static_cast<uint32_t>(lookup<0>(p, code_offset<FieldBits, J>(w0))) +
                     static_cast<uint32_t>(lookup<tb>(p, code_offset<FieldBits, J>(w1))) +
                     static_cast<uint32_t>(lookup<2 * tb>(p, code_offset<FieldBits, J>(w2))) +
                     static_cast<uint32_t>(lookup<3 * tb>(p, code_offset<FieldBits, J>(w3)));
  acc[J] = static_cast<int32_t>(static_cast<uint32_t>(acc[J]) + s);
  if constexpr (J + 1 < Count) add_group_pair_fields<FieldBits, Count, J + 1>(w0, w1, w2, w3, p, acc);
}

// Out of line for the same register reasons as add_group_words; unrolled over 8 fields.
template <unsigned Bits>
__attribute__((noinline)) void add_group_pairs(const uint32_t* const* cols, uint32_t n_words, const int32_t* p,
                                               int32_t* acc) {
  constexpr unsigned field_bits = 2 * Bits, fields = 32 / field_bits;
  constexpr unsigned per_pass = fields < 8 ? fields : 8, passes = fields / per_pass;
  const uint32_t *c0 = cols[0], *c1 = cols[1], *c2 = cols[2], *c3 = cols[3];
  for (uint32_t k = 0; k < n_words; ++k) {
    uint32_t w0 = c0[k], w1 = c1[k], w2 = c2[k], w3 = c3[k];
    for (unsigned pass = 0; pass < passes; ++pass, acc += per_pass) {
      add_group_pair_fields<field_bits, per_pass>(w0, w1, w2, w3, p, acc);
      if constexpr (passes > 1) {
        w0 <<= per_pass * field_bits, w1 <<= per_pass * field_bits, w2 <<= per_pass * field_bits,
            w3 <<= per_pass * field_bits;
      }
    }
  }
}

template <class S>
inline void column_group_pairs(const uint32_t* const* cols, const int32_t* a, const int8_t* const* at, const int8_t* begin, ColumnShape shape,
                               const uint32_t* tails, int32_t* acc, bool packed) {
  constexpr uint32_t n = 1u << (2 * S::code_bits);
  int32_t p[kGroup * n];
  for (uint32_t k = 0; k < kGroup; ++k) fill_pair_table<S>(a[k], p + k * n);
  const uint32_t full = static_cast<uint32_t>(shape.full);
  if (packed) {
    add_group_pairs<S::code_bits>(cols, full, p, acc);
  } else {  // rare: each word split at once, through the tail kernel
    for (uint32_t w = 0; w < full; ++w) {
      const uint32_t win[kGroup] = {cols[0][w], cols[1][w], cols[2][w], cols[3][w]};
      add_group_tail<S::code_bits, true>(win, S::codes_per_word, p, acc + (w << S::log2_codes_per_word));
    }
  }
  if (shape.tail) group_tail<S::code_bits, true>(at, begin, shape, tails, p, acc);
}

// ---- Ternary: groups of four inputs ----------------------------------------------------------

// Ten trits of four inputs' words as five trit pairs: x *= 9 (x + 8x) moves the next two trits
// into bits 19..16 as 3*t1 + t2, exactly what two steps of x *= 3 give. A pair table
// p[3*t1 + t2] = (t[t1] << 16) + t[t2] adds one input's weights of two outputs in two 16-bit
// lanes (the four tables lie 9 entries apart from one base). One loop iteration per trit pair:
// not unrolled, the Ternary firmware has no flash to spare.
//
// The sum of the four lookups is added as it is to acc[pair] (mod 2^32): two outputs in one
// word, split into int32 accumulators only at the end of the layer (unpack_lane_pairs). Exact
// while each lane's total stays within int16: the caller tracks sum |a| over the inputs added
// so far (a lane never exceeds it) and, past 32767, splits after every word instead
// (column_ternary). No test in this loop: a mode flag cost 9 % of the Ternary model's time.
inline __attribute__((noinline)) void add_trit_words4(const uint16_t* const* cols, uint32_t n_words,
                                                      const int32_t* p, int32_t* acc) {
  constexpr uint32_t tb = 9 * 4;  // bytes per trit pair table
  const uint16_t *c0 = cols[0], *c1 = cols[1], *c2 = cols[2], *c3 = cols[3];
  for (uint32_t k = 0; k < n_words; ++k) {
    uint32_t x0 = c0[k], x1 = c1[k], x2 = c2[k], x3 = c3[k];
    for (uint32_t j = 0; j < 5; ++j, ++acc) {
      x0 += x0 << 3, x1 += x1 << 3, x2 += x2 << 3, x3 += x3 << 3;
      const uint32_t s = static_cast<uint32_t>(lookup<0>(p, (x0 >> 16) << 2)) +
                         static_cast<uint32_t>(lookup<tb>(p, (x1 >> 16) << 2)) +
                         static_cast<uint32_t>(lookup<2 * tb>(p, (x2 >> 16) << 2)) +
                         static_cast<uint32_t>(lookup<3 * tb>(p, (x3 >> 16) << 2));
      *acc = static_cast<int32_t>(static_cast<uint32_t>(*acc) + s);
      x0 &= 0xFFFFu, x1 &= 0xFFFFu, x2 &= 0xFFFFu, x3 &= 0xFFFFu;
    }
  }
}
// p[3*h + l] = (t[h] << 16) + t[l], t = {a, -a, 0} (trits +1, -1, 0).
__attribute__((always_inline)) inline void fill_trit_pair_table(int32_t a, int32_t* p) {
  const int32_t t[3] = {a, -a, 0};
  for (uint32_t h = 0; h < 3; ++h, p += 3) {
    const int32_t hi = shl(t[h], 16);
    p[0] = hi + a, p[1] = hi - a, p[2] = hi;
  }
}

// Position of a column's first code in the Ternary tail stream, kept without division.
struct TritCursor {
  uint32_t word = 0, trit = 0;
  void advance(uint32_t n) {  // n < 10
    trit += n;
    if (trit >= 10) trit -= 10, ++word;
  }
};

// `n` trits from base-3 state x (next trit in the fraction's top), two at a time from a trit
// pair table; a last odd trit t reads entry t = (0, t), whose low lane is t's weight.
__attribute__((always_inline)) inline void add_trit_run(uint32_t x, uint32_t n, const int32_t* p, int32_t* acc) {
  for (; n >= 2; n -= 2, acc += 2) {
    x += x << 3;
    const int32_t s = p[x >> 16];
    const int32_t lo = static_cast<int32_t>(static_cast<uint32_t>(s) << 16) >> 16;
    acc[0] += (s - lo) >> 16;
    acc[1] += lo;
    x &= 0xFFFFu;
  }
  if (n) {
    x += x << 1;
    acc[0] += static_cast<int32_t>(static_cast<uint32_t>(p[x >> 16]) << 16) >> 16;
  }
}
// A column's `count` tail trits from trit `start` of words[0] on, continuing in the next words:
// the skip takes two trits per step, and each word's run has no word-boundary test per trit.
__attribute__((noinline)) inline void add_tail_trits(const uint16_t* words, uint32_t start, uint32_t count,
                                                     const int32_t* p, int32_t* acc) {
  uint32_t x = words[0];
  uint32_t n = 10 - start;
  for (; start >= 2; start -= 2) x = (x + (x << 3)) & 0xFFFFu;
  if (start) x = (x + (x << 1)) & 0xFFFFu;
  for (;;) {  // one copy of the run: the Ternary firmware has no flash to spare
    if (n > count) n = count;
    add_trit_run(x, n, p, acc);
    if (count == n) return;
    acc += n, count -= n, n = 10, x = *++words;
  }
}

// Up to four nonzero inputs: column, value, tail position; `bound` = sum |a| of every input of
// the layer so far, `packed` whether the full words' outputs are still packed lane pairs.
struct TritGroup {
  const uint16_t* cols[4];
  int32_t a[4];
  TritCursor pos[4];
  uint32_t bound;
  bool packed;
};
// Runs the group's n inputs (n < 4: padded with a = 0, no tail pass for the pads). Out of line:
// the Ternary firmware calls it from two places.
__attribute__((noinline)) inline void column_ternary(TritGroup& g, uint32_t n, ColumnShape shape,
                                                     const uint16_t* tails, int32_t* acc) {
  const uint32_t full = static_cast<uint32_t>(shape.full);
  for (uint32_t k = n; k < 4; ++k) g.cols[k] = g.cols[0], g.a[k] = 0;
  if (g.packed && g.bound > 0x7FFFu) {  // a lane could leave int16: split them now
    unpack_lane_pairs(acc, static_cast<uint32_t>(mul_const<5>(static_cast<int32_t>(full))));
    g.packed = false;
  }
  int32_t t[4 * 9];  // trit pair tables
  for (uint32_t k = 0; k < 4; ++k) fill_trit_pair_table(g.a[k], t + mul_const<9>(static_cast<int32_t>(k)));
  if (g.packed) {
    add_trit_words4(g.cols, full, t, acc);
  } else {  // rare (sum |a| > 32767): each column as one trit run into int32 accumulators
    for (uint32_t k = 0; k < n; ++k)
      add_tail_trits(g.cols[k], 0, static_cast<uint32_t>(mul_const<10>(static_cast<int32_t>(full))),
                     t + mul_const<9>(static_cast<int32_t>(k)), acc);
  }
  if (shape.tail) {
    int32_t* tail_acc = acc + mul_const<10>(static_cast<int32_t>(full));
    for (uint32_t k = 0; k < n; ++k)
      add_tail_trits(tails + g.pos[k].word, g.pos[k].trit, static_cast<uint32_t>(shape.tail),
                     t + mul_const<9>(static_cast<int32_t>(k)), tail_acc);
  }
}

// ---- 8bit ---------------------------------------------------------------------------------------

// With a multiplier.
inline void column_int8_mul(const uint32_t* col, uint32_t n_words, int32_t a, int32_t* acc) {
  for (uint32_t k = 0; k < n_words; ++k) {
    uint32_t w = *col++;
    for (uint32_t j = 0; j < 4; ++j, w <<= 8) *acc++ += mul_i32(a, static_cast<int32_t>(w) >> 24);
  }
}

// Without one: w*a = hi(w)*16a + lo(w)*a, hi signed and lo unsigned nibble, from two 16-entry
// tables built by addition (~12 instructions per weight instead of a ~40-instruction software
// multiply on RV32EC).
inline void int8_tables(int32_t a, int32_t* lo, int32_t* hi) {
  int32_t v = 0;
  for (uint32_t k = 0; k < 16; ++k, v += a) lo[k] = v;
  const int32_t minus_128a = -shl(a, 7);
  for (uint32_t k = 0; k < 8; ++k) {
    hi[k] = shl(lo[k], 4);
    hi[k + 8] = hi[k] + minus_128a;  // (k - 8) * 16a
  }
}
// Weight J of a word: its high nibble is nibble 2J, its low nibble 2J+1; both lookups are a
// shift, a mask, an add and a load from one base (lo table, then hi table 64 bytes on).
template <unsigned J = 0>
inline void add_int8_codes(uint32_t w, const int32_t* t, int32_t* acc) {
  acc[J] += lookup<64>(t, code_offset<4, 2 * J>(w)) + lookup<0>(t, code_offset<4, 2 * J + 1>(w));
  if constexpr (J + 1 < 4) add_int8_codes<J + 1>(w, t, acc);
}
// Out of line, the table a parameter: on RV32E the unrolled word then keeps every value in
// registers and addresses the table from one register (11 instructions per weight; inlined into
// dense, GCC spilled pointers and addressed the stack table with two adds: 19).
__attribute__((noinline)) inline void add_int8_words(const uint32_t* col, uint32_t n_words, const int32_t* t,
                                                     int32_t* acc) {
  for (const uint32_t* const end = col + n_words; col != end; ++col, acc += 4) add_int8_codes(*col, t, acc);
}
inline void column_int8_tables(const uint32_t* col, uint32_t n_words, int32_t a, int32_t* acc) {
  int32_t t[32];  // lo[16], hi[16]
  int8_tables(a, t, t + 16);
  add_int8_words(col, n_words, t, acc);
}

inline void column_int8(const uint32_t* col, ColumnShape shape, const uint32_t* tails, uint32_t tail_pos, int32_t a,
                        int32_t* acc) {
  const uint32_t full = static_cast<uint32_t>(shape.full);
#if defined(__riscv) && !defined(__riscv_mul)
  column_int8_tables(col, full, a, acc);
#else
  column_int8_mul(col, full, a, acc);
#endif
  int32_t* tail_acc = acc + (full << 2);
  for (uint32_t j = 0; j < shape.tail; ++j) tail_acc[j] += mul_i32(a, static_cast<int8_t>(Int8::code_at(tails, tail_pos + j)));
}

}  // namespace detail

// acc[o] = sum_i decode(W[o][i]) * (x[i] - x_offset); weights in pack_columns<S> layout.
template <class S>
void dense(const typename S::word_t* cols, uint32_t n_in, uint32_t n_out, const int8_t* x, int32_t x_offset,
           int32_t* acc) {
  // A bottom-tested pointer loop: sw, add, bne per output (GCC -Os kept the top test of a for
  // loop: 4).
  if (n_out == 0) return;
  for (int32_t *o = acc, *const end = acc + n_out;;) {
    *o = 0;
    if (++o == end) break;
  }
  const ColumnShape shape = column_shape<S>(n_out);
  const uint32_t full = static_cast<uint32_t>(shape.full), tail = static_cast<uint32_t>(shape.tail);
  const typename S::word_t* tails = cols + mul_shift_add(static_cast<int32_t>(n_in), static_cast<int32_t>(full));

  if constexpr (S::family == DenseFamily::Bytes) {
    for (uint32_t i = 0, pos = 0; i < n_in; ++i, cols += full, pos += tail) {
      const int32_t a = static_cast<int32_t>(x[i]) - x_offset;
      if (a) detail::column_int8(cols, shape, tails, pos, a, acc);
    }
  } else if constexpr (S::family == DenseFamily::Trits) {
    // The full words' outputs start packed (add_trit_words4) and are split at the end.
    detail::TritGroup g;
    g.bound = 0, g.packed = true;
    detail::TritCursor pos;
    uint32_t k = 0;
    for (uint32_t i = 0; i < n_in; ++i, cols += full, pos.advance(tail)) {
      const int32_t a = static_cast<int32_t>(x[i]) - x_offset;
      if (a == 0) continue;
      g.cols[k] = cols, g.a[k] = a, g.pos[k] = pos;
      g.bound += static_cast<uint32_t>(a < 0 ? -a : a);
      if (++k == 4) detail::column_ternary(g, 4, shape, tails, acc), k = 0;
    }
    if (k) detail::column_ternary(g, k, shape, tails, acc);
    if (g.packed) detail::unpack_lane_pairs(acc, static_cast<uint32_t>(mul_const<5>(static_cast<int32_t>(full))));
  } else {
    // Nonzero inputs in groups of kGroup; the last group is padded with zero inputs.
    detail::GroupScan scan;  // the group arrays are written before they are read: not zeroed (a memset call)
    scan.x = x, scan.end = x + n_in, scan.offset = x_offset, scan.cols = cols, scan.full = full;
    // PairBits: lane pairs packed while max_abs * sum |a| <= 32767 (see add_group_pairs)
    const uint32_t packed_pairs = (full << S::log2_codes_per_word) >> 1;
    uint32_t bound = 0;
    bool packed = true;
    for (;;) {
      const uint32_t k = detail::scan_group(scan);
      if (k == 0) break;
      for (uint32_t j = k; j < detail::kGroup; ++j)
        scan.cols_k[j] = scan.cols_k[0], scan.at_k[j] = scan.at_k[0], scan.a_k[j] = 0;
      // 1- and 2-bit codes: pair tables only (a second kernel would not fit the chip's flash)
      if constexpr (S::family == DenseFamily::PairBits) {
        if (packed) {  // unrolled into a local: a loop kept `bound` on the stack (8 instructions per input)
          uint32_t group_abs = 0;
#pragma GCC unroll 4
          for (uint32_t j = 0; j < detail::kGroup; ++j)
            group_abs += static_cast<uint32_t>(scan.a_k[j] < 0 ? -scan.a_k[j] : scan.a_k[j]);
          bound += group_abs;
          if (bound > 0x7FFFu / S::max_abs) detail::unpack_lane_pairs(acc, packed_pairs), packed = false;
        }
        detail::column_group_pairs<S>(scan.cols_k, scan.a_k, scan.at_k, x, shape, tails, acc, packed);
      } else {
        detail::column_group<S>(scan.cols_k, scan.a_k, scan.at_k, x, shape, tails, acc);
      }
      if (k < detail::kGroup) break;
    }
    if constexpr (S::family == DenseFamily::PairBits)
      if (packed) detail::unpack_lane_pairs(acc, packed_pairs);
  }
}

}  // namespace bitnetmcu
