// Bit-plane dense kernel for 4-bit schemes whose value is linear in an offset-binary code u
// (0..15): value = Scale * u - Bias (4bitsym: 2u - 15, 4bit: u - 8: the schemes' plane_scale and
// plane_bias).
//
//   sum_i a_i (Scale u_i - Bias) = Scale * sum_k 2^k sum_{i: bit k of a_i} u_i - Bias * sum_i a_i
//
// so no table is built and no code is looked up: the column words of the inputs whose bit k is
// set are added as they are, eight codes per word (a run of at most 15 inputs: the low nibbles'
// byte lanes stay below 256), and each run is widened into 16-bit lanes shifted by k (T).
// A chunk of inputs with sum |a| <= 4369 keeps every lane of T within 16 bits (15 * 4369 =
// 65535); at its end T is added into the int32 accumulators. Negative inputs (a pixel below the
// background, feature values) run in a second pass, adding the complements of their codes.
//
// Column layout (`plane_columns`, layout.hpp): column i is ceil(n_out / 8) words of 8 codes. The
// typed model converts its pack_columns words at compile time (model.hpp), so model files and
// headers keep one layout.
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "arith.hpp"
#include "dense.hpp"  // skip_offset

// Typed dense layers tagged DenseKernel::Planes (model.hpp; the exporter tags them) run this
// kernel where BITNETMCU_DENSE_PLANES is 1: on RISC-V, where it takes fewer instructions than the
// table kernel (docs/engine.md). Elsewhere the table kernel is faster; =1 selects it anywhere
// (host tests).
#ifndef BITNETMCU_DENSE_PLANES
#if defined(__riscv)
#define BITNETMCU_DENSE_PLANES 1
#else
#define BITNETMCU_DENSE_PLANES 0
#endif
#endif

namespace bitnetmcu {

// Whether S's value is plane_scale * u - plane_bias for an offset-binary code u (schemes.hpp).
template <class S, class = void>
constexpr bool has_plane_traits = false;
template <class S>
constexpr bool has_plane_traits<S, decltype(void(S::plane_scale + S::plane_bias))> = true;
// The same for a scheme id (the exporter).
constexpr bool scheme_has_plane_traits(SchemeId id) {
  bool r = false;
  visit_scheme(id, [&](auto s) { r = has_plane_traits<decltype(s)>; });
  return r;
}

// Scratch words of T that dense_planes needs for n_out outputs (passes of four column words).
constexpr uint32_t plane_scratch_words(uint32_t n_out) { return 16 * ((n_out + 31) / 32); }

namespace detail {

constexpr uint32_t kPlaneRun = 15;      // columns per run: 15 * 15 = 225, a byte lane's largest sum
constexpr uint32_t kPlaneChunk = 4369;  // 15 * 4369 = 65535: a 16-bit lane of T
constexpr uint32_t kLo4 = 0x0F0F0F0Fu, kLo8 = 0x00FF00FFu;

// T: 16-bit lanes, word q = outputs 2q | 2q + 1 (low | high half; plane_columns puts the codes
// in the nibbles that make this so). s[j] is the raw sum of a run's words j (its lanes carry into
// each other), h[j] the sum of their high nibbles; the low nibbles' byte lanes are s - (h << 4),
// exact mod 2^32. Adds the four words' lanes, shifted by k, into T.
inline void add_plane_words(const uint32_t* s, const uint32_t* h, uint32_t k, uint32_t* t) {
  for (uint32_t j = 0; j < 4; ++j, t += 4) {
    const uint32_t lo = s[j] - (h[j] << 4), hi = h[j];
    t[0] += (lo & kLo8) << k;
    t[1] += ((lo >> 8) & kLo8) << k;
    t[2] += (hi & kLo8) << k;
    t[3] += ((hi >> 8) & kLo8) << k;
  }
}

// A run of plane k into T (words: column words; e: the run's column addresses, 0-terminated).
// negative: the run's inputs are negative, so it adds the complements of their columns' codes
// (15 - u): a * (S u - B) = |a| * (S (15 - u) - B) + |a| * (2B - 15S) (dense_planes adds the last
// term; 0 for 4bitsym). The sums of the complemented words follow from those of the words and
// the run's length n: sum ~w = -sum w - n, and of the high nibbles n * 0x0F0F0F0F - h.
// The reference form, for every target and for layers wider than 64 outputs on RV32.
inline void add_plane_run_ref(const uint32_t* const* e, uint32_t k, uint32_t* t, uint32_t words, bool negative) {
  uint32_t n = 0;
  while (e[n]) ++n;
  for (uint32_t p = 0; p < words; p += 4, t += 16) {
    uint32_t s[4] = {0, 0, 0, 0}, h[4] = {0, 0, 0, 0};
    for (uint32_t j = 0; j < 4 && p + j < words; ++j) {
      for (const uint32_t* const* c = e; *c; ++c) {
        const uint32_t w = (*c)[p + j];
        s[j] += w;
        h[j] += (w >> 4) & kLo4;
      }
      if (negative) s[j] = 0u - s[j] - n, h[j] = n * kLo4 - h[j];  // the sums of the words' complements
    }
    add_plane_words(s, h, k, t);
  }
}

#if defined(__riscv) && __riscv_xlen == 32 && !defined(BITNETMCU_PORTABLE_KERNELS)
// The same for words <= 8, written out for RV32E (12 free registers; GCC spilled k, the mask
// and t around the sums). Per member and word lw, add, srli, and, add: sums s in t0 t1 t2 ra,
// high-nibble sums h in s1 a3 a4 a5, the mask in s0, e a0, column a1, word a2 (the loop is all
// 2-byte RV32C instructions). Arguments: e, k, t, words, negative. The T update is a local
// routine (9, link a5) called once per word: the code once, for 4 instructions more per word.
// A pass of four may read up to three words past a column: plane_columns arrays end with
// padding for that, and the lanes it adds belong to outputs that do not exist.
// One column word of a run member (column address in a1) into the sums s and h.
#define BITNETMCU_PLANE_WORD(off, s, h) \
  "lw a2, " #off "(a1)\n add " s ", " s ", a2\n srli a2, a2, 4\n and a2, a2, s0\n add " h ", " h ", a2\n"
// A loop over the run (e in a0, 0-terminated) adding `words` of every member; then to 5.
#define BITNETMCU_PLANE_LOOP(label, words) \
  label ":\n lw a1, 0(a0)\n beqz a1, 5f\n" words " addi a0, a0, 4\n j " label "b\n"
#define BITNETMCU_PLANE_ZERO8 \
  "li t0, 0\n li t1, 0\n li t2, 0\n li ra, 0\n li s1, 0\n li a3, 0\n li a4, 0\n li a5, 0\n li s0, 0x0F0F0F0F\n"
// T word (sum t0, high nibbles s1) at a0 += its lanes shifted by a1 (mask 0x00FF00FF in ra;
// temporaries a2, s0): lo = s - (h << 4), then the four lane words.
#define BITNETMCU_PLANE_LANE(value, off) "lw s0, " #off "(a0)\n add s0, s0, " value "\n sw s0, " #off "(a0)\n"
__attribute__((naked, noinline)) inline void add_plane_run_rv32(const uint32_t* const*, uint32_t, uint32_t*, uint32_t,
                                                                 uint32_t) {
  __asm__(
      // frame: s0 s1 ra, then e 12, k 16, t 20, words 24, the spilled sums 28 (s) 32 (h), negative 36
      "addi sp, sp, -40\n sw s0, 0(sp)\n sw s1, 4(sp)\n sw ra, 8(sp)\n"
      "sw a0, 12(sp)\n sw a1, 16(sp)\n sw a2, 20(sp)\n sw a3, 24(sp)\n sw a4, 36(sp)\n"
      "li a1, 2\n bltu a1, a3, 2f\n"
      // words <= 2: one pass of two
      "li t0, 0\n li t1, 0\n li s1, 0\n li a3, 0\n li s0, 0x0F0F0F0F\n"
      BITNETMCU_PLANE_LOOP("1", BITNETMCU_PLANE_WORD(0, "t0", "s1") BITNETMCU_PLANE_WORD(4, "t1", "a3"))
      // words 0..3
      "2:\n" BITNETMCU_PLANE_ZERO8
      BITNETMCU_PLANE_LOOP("3", BITNETMCU_PLANE_WORD(0, "t0", "s1") BITNETMCU_PLANE_WORD(4, "t1", "a3")
                                    BITNETMCU_PLANE_WORD(8, "t2", "a4") BITNETMCU_PLANE_WORD(12, "ra", "a5"))
      // words 4..7 (e again from the frame)
      "4:\n" BITNETMCU_PLANE_ZERO8 "lw a0, 12(sp)\n"
      BITNETMCU_PLANE_LOOP("6", BITNETMCU_PLANE_WORD(16, "t0", "s1") BITNETMCU_PLANE_WORD(20, "t1", "a3")
                                    BITNETMCU_PLANE_WORD(24, "t2", "a4") BITNETMCU_PLANE_WORD(28, "ra", "a5"))
      // a negative run: s = -s - n, h = n * 0x0F0F0F0F - h (n = the run's length, a1; a2 = n * 0x0F0F0F0F)
      "5:\n lw a1, 36(sp)\n beqz a1, 8f\n lw a1, 12(sp)\n sub a1, a0, a1\n srli a1, a1, 2\n"
      "slli a2, a1, 8\n or a2, a2, a1\n slli s0, a2, 16\n or a2, a2, s0\n slli s0, a2, 4\n sub a2, s0, a2\n"
      "neg t0, t0\n sub t0, t0, a1\n sub s1, a2, s1\n neg t1, t1\n sub t1, t1, a1\n sub a3, a2, a3\n"
      "neg t2, t2\n sub t2, t2, a1\n sub a4, a2, a4\n neg ra, ra\n sub ra, ra, a1\n sub a5, a2, a5\n"
      // the T update: word 3's sums to the frame, then one call of 9 per word
      "8:\n sw ra, 28(sp)\n sw a5, 32(sp)\n lw a0, 20(sp)\n lw a1, 16(sp)\n li ra, 0x00FF00FF\n"
      "jal a5, 9f\n mv t0, t1\n mv s1, a3\n jal a5, 9f\n"
      "lw a2, 24(sp)\n li s0, 2\n bgeu s0, a2, 7f\n"
      "mv t0, t2\n mv s1, a4\n jal a5, 9f\n lw t0, 28(sp)\n lw s1, 32(sp)\n jal a5, 9f\n"
      // more than 4 words: once more from word 4, with t + 64 and 3 as `words` (done after it)
      "lw a2, 24(sp)\n li s0, 4\n bgeu s0, a2, 7f\n li a2, 3\n sw a2, 24(sp)\n sw a0, 20(sp)\n j 4b\n"
      "9:\n slli a2, s1, 4\n sub t0, t0, a2\n"
      "and a2, t0, ra\n sll a2, a2, a1\n" BITNETMCU_PLANE_LANE("a2", 0)
      "srli t0, t0, 8\n and t0, t0, ra\n sll t0, t0, a1\n" BITNETMCU_PLANE_LANE("t0", 4)
      "and a2, s1, ra\n sll a2, a2, a1\n" BITNETMCU_PLANE_LANE("a2", 8)
      "srli s1, s1, 8\n and s1, s1, ra\n sll s1, s1, a1\n" BITNETMCU_PLANE_LANE("s1", 12)
      "addi a0, a0, 16\n jr a5\n"
      "7:\n lw s0, 0(sp)\n lw s1, 4(sp)\n lw ra, 8(sp)\n addi sp, sp, 40\n ret\n");
}
#undef BITNETMCU_PLANE_WORD
#undef BITNETMCU_PLANE_LOOP
#undef BITNETMCU_PLANE_ZERO8
#undef BITNETMCU_PLANE_LANE
#endif

// The run kernel of the target (Wide: a layer has more than 64 outputs).
template <bool Wide>
inline void add_plane_run(const uint32_t* const* e, uint32_t k, uint32_t* t, uint32_t words, bool negative) {
#if defined(__riscv) && __riscv_xlen == 32 && !defined(BITNETMCU_PORTABLE_KERNELS)
  if (!Wide || words <= 8) return add_plane_run_rv32(e, k, t, words, negative);
#endif
  add_plane_run_ref(e, k, t, words, negative);
}

// acc[o] = (acc[o] & keep) + Scale * T[o] - bias (keep: 0 writes, ~0 adds); T = 0. T word q
// holds outputs 2q (low half) and 2q + 1 (high half): plane_columns' nibble order.
template <int32_t Scale>
__attribute__((noinline)) void add_plane_lanes(uint32_t* t, uint32_t n_out, int32_t bias, int32_t keep, int32_t* acc) {
  uint32_t* const t_end = t + plane_scratch_words(n_out);  // also the lanes of outputs that do not exist
  for (int32_t* const end = acc + n_out;; ++t) {
    const uint32_t word = *t;
    *t = 0;
    acc[0] = (acc[0] & keep) + static_cast<int32_t>(word & 0xFFFFu) * Scale - bias;
    if (acc + 1 == end) break;
    acc[1] = (acc[1] & keep) + static_cast<int32_t>(word >> 16) * Scale - bias;
    if ((acc += 2) == end) break;
  }
  while (++t != t_end) *t = 0;
}

// A layer's run lists: plane k's run fills slot[k] downwards from slot[k][14] (full at
// slot[k][0]); slot[k][15] = 0 ends it.
struct PlaneRuns {
  const uint32_t** run[8];  // first: within reach of RV32C's 2-byte sp-relative loads and stores
  uint32_t* t;
  uint32_t words;
  uint32_t negative;  // the runs hold negative inputs (dense_planes' second pass)
  const uint32_t* slot[8][kPlaneRun + 1];
};
template <bool Wide>
__attribute__((noinline)) void flush_plane(PlaneRuns& r, uint32_t k) {
  add_plane_run<Wide>(r.run[k], k, r.t, r.words, r.negative);
  r.run[k] = &r.slot[k][detail::kPlaneRun];
}

}  // namespace detail

// A dense layer in the plane_columns layout (layout.hpp): n_in columns, n_out outputs; t:
// plane_scratch_words(n_out) words of scratch, zero (and zero again after every call, so
// layers can share it).
struct PlaneLayer {
  const uint32_t* columns;
  uint32_t n_in, n_out;
  uint32_t* t;
};

// acc[o] = sum_i (Scale * u(W[o][i]) - Bias) * (x[i] - x_offset). Wide: n_out > 64 possible.
// Inputs above x_offset first; those below (pixels darker than the background, feature values)
// in a second pass over x, only when there are any.
template <int32_t Scale, int32_t Bias, bool Wide>
__attribute__((noinline)) void dense_planes(const PlaneLayer& layer, const int8_t* x, int32_t x_offset, int32_t* acc) {
  static_assert(Scale == 1 || Scale == 2, "plane kernels scale by 1 or 2");
  constexpr int32_t kComplement = 2 * Bias - 15 * Scale;  // per |a| of a negative input (above)
  const uint32_t n_out = layer.n_out, words = (n_out + 7) >> 3;
  detail::PlaneRuns r;
  r.t = layer.t, r.words = words, r.negative = 0;
  for (uint32_t k = 0; k < 8; ++k) r.slot[k][detail::kPlaneRun] = nullptr, r.run[k] = &r.slot[k][detail::kPlaneRun];
  auto flush_all = [&]() {
    for (uint32_t k = 0; k < 8; ++k)
      if (r.run[k] != &r.slot[k][detail::kPlaneRun]) detail::flush_plane<Wide>(r, k);
  };
  int32_t keep = 0;          // acc holds values: ~0 (else the first chunk writes it)
  uint32_t chunk = 0;        // sum |a| of the chunk
  uint32_t chunk_neg = 0;    // of its negative inputs
  bool any_negative = false;
  auto end_chunk = [&]() {
    flush_all();
    int32_t bias = mul_const<Bias>(static_cast<int32_t>(chunk));
    if constexpr (kComplement != 0) bias -= mul_const<kComplement>(static_cast<int32_t>(chunk_neg));
    detail::add_plane_lanes<Scale>(r.t, n_out, bias, keep, acc);
    keep = -1, chunk = 0, chunk_neg = 0;
  };
  for (;;) {
    const uint32_t* col = layer.columns;
    for (const int8_t *p = x, *const end = x + layer.n_in; p != end; ++p, col += words) {
      int32_t a = detail::skip_offset(p, end, x_offset, col, words) - x_offset;
      if (p == end) break;
      if (r.negative) {
        if (a > 0) continue;
        a = -a;
      } else if (a < 0) {
        any_negative = true;
        continue;
      }
      if (chunk + static_cast<uint32_t>(a) > detail::kPlaneChunk) end_chunk();
      chunk += static_cast<uint32_t>(a);
      if (r.negative) chunk_neg += static_cast<uint32_t>(a);
#pragma GCC unroll 8
      for (uint32_t k = 0; k < 8; ++k) {
        if (!(a & (1 << k))) continue;
        *--r.run[k] = col;
        if (r.run[k] == &r.slot[k][0]) detail::flush_plane<Wide>(r, k);
      }
    }
    if (r.negative || !any_negative) break;
    flush_all();  // runs hold one sign
    r.negative = 1;
  }
  end_chunk();
}

}  // namespace bitnetmcu
