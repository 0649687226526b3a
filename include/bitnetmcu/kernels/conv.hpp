// 3x3 valid convolution, 2x2 max-pool and the channel-sequential depthwise CNN block
// (SPEC §3, §6). Conv weights are codes of a scheme S, one byte each, [channel][3][3]; for 8bit
// (the SPEC's CNN) the byte is the int8 weight itself. 8bit and the other multi-level schemes
// multiply (the hardware `mul` where the target has one, shifts and adds by each weight's
// signed digits otherwise: mul_program);
// FP130 conv weights are a shift and a sign, so a CNN with FP130 convs needs no multiplier.
#pragma once
#include <stdint.h>

#include "../schemes.hpp"
#include "arith.hpp"

namespace bitnetmcu {

// The CNN block's activation shift: ReLU then >> kCnnShift after each conv (SPEC §6: 4 in the
// reference CNN). Not a training key: the exporter writes it into every CNN layer it packs, and
// a model header or model file carries it per layer (Cnn<..., Shift, ...>, LayerDesc::shift).
constexpr uint32_t kCnnShift = 4;

// out[y][x] = max(0, sum_{ky,kx} w[ky][kx] * in[y+ky][x+kx]) >> shift, for a valid 3x3
// convolution of an h x w plane: the plain reference (decode, multiply, add) for every scheme.
// `out` (h-2) x (w-2) may alias `in`: output (y, x) is written at y*(w-2)+x, at or before every
// input position still to be read.
template <class S, class T>
inline void conv3x3_relu_shift(const T* in, uint32_t h, uint32_t w, const uint8_t* k, uint32_t shift,
                               int32_t* out) {
  const uint32_t oh = h - 2, ow = w - 2;
  int32_t kw[9];  // decoded once per plane
  for (uint32_t i = 0; i < 9; ++i) kw[i] = S::decode(k[i]);
  for (uint32_t y = 0; y < oh; ++y, in += w) {  // pointers only: no index multiply on RV32EC
    for (uint32_t x = 0; x < ow; ++x) {
      const T* p = in + x;
      const int32_t* kk = kw;
      int32_t s = 0;
      for (uint32_t ky = 0; ky < 3; ++ky, p += w, kk += 3)
        for (uint32_t kx = 0; kx < 3; ++kx) s += mul_i32(static_cast<int32_t>(p[kx]), kk[kx]);
      *out++ = s < 0 ? 0 : (s >> shift);
    }
  }
}

// 2x2 max-pool, stride 2, in place allowed (output (y,x) lands before any unread input).
inline void maxpool2x2(const int32_t* in, uint32_t h, uint32_t w, int32_t* out) {
  const uint32_t oh = h / 2, ow = w / 2;
  for (uint32_t y = 0; y < oh; ++y, in += 2 * w) {
    const int32_t* p = in;
    for (uint32_t x = 0; x < ow; ++x, p += 2) {
      int32_t m = p[0];
      if (p[1] > m) m = p[1];
      if (p[w] > m) m = p[w];
      if (p[w + 1] > m) m = p[w + 1];
      *out++ = m;
    }
  }
}

// The CNN front end of CNNMNIST, one channel at a time in one (n-2)^2 int32 plane:
// conv1 (1->C) -> ReLU>>shift -> dwconv2 -> ReLU>>shift -> pool -> dwconv3 -> ReLU>>shift -> pool.
// image: n x n int8 (n = 16); out: C * ((n-4)/2 - 2)/2 squared values, channel-major
// (flatten order of a [C][2][2] tensor). plane: (n-2)*(n-2) int32 scratch.
// The plain composition of the steps above over full planes: the reference twin of the streamed
// cnn_channel_block below.
template <class S>
inline void cnn_channel_block_ref(const int8_t* image, uint32_t n, uint32_t channels, const uint8_t* w1,
                                  const uint8_t* w2, const uint8_t* w3, uint32_t shift, int32_t* plane,
                                  int32_t* out) {
  for (uint32_t c = 0; c < channels; ++c, w1 += 9, w2 += 9, w3 += 9) {
    uint32_t s = n;
    conv3x3_relu_shift<S>(image, s, s, w1, shift, plane);
    s -= 2;
    conv3x3_relu_shift<S>(plane, s, s, w2, shift, plane);
    s -= 2;
    maxpool2x2(plane, s, s, plane);
    s /= 2;
    conv3x3_relu_shift<S>(plane, s, s, w3, shift, plane);
    s -= 2;
    maxpool2x2(plane, s, s, plane);
    s /= 2;
    const int32_t* p = plane;
    for (uint32_t y = 0; y < s; ++y)
      for (uint32_t x = 0; x < s; ++x) *out++ = *p++;
  }
}

// ---- the fast FP130 block ---------------------------------------------------------------------
namespace detail {

__attribute__((always_inline)) inline int32_t relu_shift(int32_t v, uint32_t shift) { return v < 0 ? 0 : (v >> shift); }

// What a kernel row does with its sums: the first row writes them, the second adds them, the
// third adds them and -- for conv1, whose rows are read nine times -- applies ReLU>>kCnnShift too
// (a constant: RV32E passes six arguments in registers, and the tap row already takes six).
enum class RowMode { Init, Add, AddReluShift };

template <RowMode M>
__attribute__((always_inline)) inline void store_row_sum(int32_t* acc, int32_t s) {
  if constexpr (M == RowMode::Init)
    *acc = s;
  else if constexpr (M == RowMode::Add)
    *acc += s;
  else
    *acc = relu_shift(*acc + s, kCnnShift);
}

// One kernel row over one output row: acc[x] (+)= +-(p[x] << e0) +-(p[x+1] << e1) +-(p[x+2] << e2).
// Signs are template arguments (8 variants per input type and mode), so a tap costs a load, a
// shift and an add; all values stay in RV32E's registers.
template <class T, RowMode M, bool N0, bool N1, bool N2>
__attribute__((noinline)) void fp130_tap_row(int32_t* acc, int32_t* end, const T* p, uint32_t e0, uint32_t e1,
                                             uint32_t e2) {
  do {
    const int32_t v0 = shl(static_cast<int32_t>(p[0]), e0), v1 = shl(static_cast<int32_t>(p[1]), e1),
                  v2 = shl(static_cast<int32_t>(p[2]), e2);
    int32_t s = N1 == N0 ? v0 + v1 : v0 - v1;  // +-s is the row's sum
    s = N2 == N0 ? s + v2 : s - v2;
    store_row_sum<M>(acc, N0 ? -s : s);
    ++p;
  } while (++acc != end);
}

// Direct calls (a switch, not a table of function pointers): the firmware's static stack bound
// (mcu/ch32v003/cmake/stack_bound.cmake) needs every callee known.
template <class T, RowMode M>
inline void fp130_kernel_row(int32_t* acc, uint32_t n, const T* p, const uint8_t* k) {
  int32_t* const end = acc + n;
  const uint32_t e0 = k[0] & 7u, e1 = k[1] & 7u, e2 = k[2] & 7u;
  switch (((k[0] >> 3) & 1u) | ((k[1] >> 2) & 2u) | ((k[2] >> 1) & 4u)) {
    case 0: return fp130_tap_row<T, M, false, false, false>(acc, end, p, e0, e1, e2);
    case 1: return fp130_tap_row<T, M, true, false, false>(acc, end, p, e0, e1, e2);
    case 2: return fp130_tap_row<T, M, false, true, false>(acc, end, p, e0, e1, e2);
    case 3: return fp130_tap_row<T, M, true, true, false>(acc, end, p, e0, e1, e2);
    case 4: return fp130_tap_row<T, M, false, false, true>(acc, end, p, e0, e1, e2);
    case 5: return fp130_tap_row<T, M, true, false, true>(acc, end, p, e0, e1, e2);
    case 6: return fp130_tap_row<T, M, false, true, true>(acc, end, p, e0, e1, e2);
    default: return fp130_tap_row<T, M, true, true, true>(acc, end, p, e0, e1, e2);
  }
}

// The multiplying schemes' kernel row, out of line: one copy per scheme and input type (flash),
// the first kernel row's "write" and the others' "add" a run-time mask (keep: 0 or ~0; Init reads
// acc but keeps none of it, so an in-place conv3 still works).
template <class S, class T>
__attribute__((noinline)) void mul_tap_row(int32_t* acc, int32_t* end, const T* p, const uint8_t* k, uint32_t keep) {
#if defined(__riscv) && !defined(__riscv_mul)
  // no multiplier: the row's three weights as signed-digit programs, built once per row
  const MulProgram m0 = mul_program(S::decode(k[0])), m1 = mul_program(S::decode(k[1])),
                   m2 = mul_program(S::decode(k[2]));
  const auto mul = [](int32_t v, MulProgram m) __attribute__((always_inline)) { return mul_by_program(v, m); };
#else
  const int32_t m0 = S::decode(k[0]), m1 = S::decode(k[1]), m2 = S::decode(k[2]);
  const auto mul = [](int32_t v, int32_t m) __attribute__((always_inline)) { return mul_i32(v, m); };
#endif
  do {
    const int32_t s = mul(static_cast<int32_t>(p[0]), m0) + mul(static_cast<int32_t>(p[1]), m1) +
                      mul(static_cast<int32_t>(p[2]), m2);
    *acc = static_cast<int32_t>(static_cast<uint32_t>(*acc) & keep) + s;
    ++p;
  } while (++acc != end);
}

// One kernel row of any scheme: FP130 as above; the multi-level schemes decode the row's three
// codes and multiply (`mul`, or on RV32EC the weights' signed-digit programs).
template <class S, class T, RowMode M>
inline void kernel_row(int32_t* acc, uint32_t n, const T* p, const uint8_t* k) {
  if constexpr (S::multiples == Multiples::PowersOfTwo) {
    fp130_kernel_row<T, M>(acc, n, p, k);
  } else {
    // (Init must write as it goes, not zero first: conv3 runs in place, its output row over its input row)
    static_assert(M != RowMode::AddReluShift, "multiplying schemes apply ReLU>>shift in a pass of their own");
    mul_tap_row<S, T>(acc, acc + n, p, k, M == RowMode::Init ? 0u : ~0u);
  }
}

// Output row `acc` (n values) from three input rows (kernel rows 0..2): raw sums, or with
// ReLU>>kCnnShift applied when ReluShift.
template <class S, class T, bool ReluShift = false>
inline void conv3x3_row(int32_t* acc, uint32_t n, const T* r0, const T* r1, const T* r2, const uint8_t* k) {
  kernel_row<S, T, RowMode::Init>(acc, n, r0, k);
  kernel_row<S, T, RowMode::Add>(acc, n, r1, k + 3);
  kernel_row<S, T, ReluShift ? RowMode::AddReluShift : RowMode::Add>(acc, n, r2, k + 6);
}

// Raw sums of a valid 3x3 convolution of an h x w plane. `out` may alias `in`: output row y is
// built at y*(w-2), over input rows no later output row reads, and its first kernel row is
// written left to right behind the reads of input row y.
template <class S, class T>
inline void conv3x3(const T* in, uint32_t h, uint32_t w, const uint8_t* k, int32_t* out) {
  const uint32_t ow = w - 2;
  for (uint32_t y = 2; y < h; ++y, in += w, out += ow) conv3x3_row<S>(out, ow, in, in + w, in + 2 * w, k);
}

// 2x2 max-pool of raw sums, then ReLU>>shift: the same as pooling the activations, because
// ReLU>>shift never decreases (max(f(a), f(b)) = f(max(a, b))), on a quarter of the values.
// Returns the end of the output. Pointer loops: with an index GCC computes that end with a
// multiply (a __mulsi3 call on RV32EC).
inline int32_t* maxpool2x2_relu_shift(const int32_t* in, uint32_t h, uint32_t w, uint32_t shift, int32_t* out) {
  const uint32_t ow = w / 2;
  for (uint32_t y = h / 2; y != 0; --y, in += 2 * w) {
    const int32_t* p = in;
    for (int32_t* const row_end = out + ow; out != row_end; ++out, p += 2) {
      int32_t m = p[0];
      if (p[1] > m) m = p[1];
      if (p[w] > m) m = p[w];
      if (p[w + 1] > m) m = p[w + 1];
      *out = relu_shift(m, shift);
    }
  }
  return out;
}

// conv1 output row `row` (s1 values, after ReLU>>shift) from the three n-wide image rows at img.
// FP130 fuses the exporter's shift, kCnnShift, into the last kernel row; any other shift, and
// the multiplying schemes (where a multiply dwarfs the pass: flash first), take a pass. Out of
// line: six arguments, all in RV32E's argument registers.
template <class S>
__attribute__((noinline)) void conv1_row(int32_t* row, uint32_t s1, const int8_t* img, uint32_t n, const uint8_t* w1,
                                         uint32_t shift) {
  if constexpr (S::multiples == Multiples::PowersOfTwo) {
    if (shift == kCnnShift) return conv3x3_row<S, int8_t, true>(row, s1, img, img + n, img + 2 * n, w1);
  }
  conv3x3_row<S, int8_t>(row, s1, img, img + n, img + 2 * n, w1);
  for (int32_t* const e = row + s1; row != e; ++row) *row = relu_shift(*row, shift);
}

}  // namespace detail

// The CNN block, streamed so that no full-size plane exists (SPEC §6 computes the same): per
// channel, conv1 rows (after ReLU>>shift) go into a ring of three rows; each conv2 row is built
// from the ring as soon as its three conv1 rows exist; every two conv2 rows are pooled (fused
// with their ReLU>>shift) into the pooled plane, which conv3 and the last pool work on in place.
// Work: cnn_work_words(n) int32 -- 102 words for n = 16 instead of conv1's 196-word plane.
// Bit-exact with cnn_channel_block_ref (integer sums in another order, none can overflow).
template <class S>
inline void cnn_channel_block(const int8_t* image, uint32_t n, uint32_t channels, const uint8_t* w1,
                              const uint8_t* w2, const uint8_t* w3, uint32_t shift, int32_t* work,
                              int32_t* out) {
  const uint32_t s1 = n - 2, s2 = s1 - 2, s3 = s2 / 2, s4 = s3 - 2;
  int32_t* const ring = work;              // 3 x s1: conv1 rows y, y+1, y+2
  int32_t* const pair = ring + 3 * s1;     // 2 x s2: conv2 rows 2k, 2k+1 (raw sums)
  int32_t* const pair_end = pair + 2 * s2;
  int32_t* const pooled = pair_end;        // s3 x s3
  for (uint32_t c = 0; c < channels; ++c, w1 += 9, w2 += 9, w3 += 9) {
    const int8_t* img = image;
    // conv1 rows 0 and 1, then per conv2 row the conv1 row two below it (img: its first image row)
    int32_t *r0 = ring, *r1 = ring + s1, *r2 = ring + 2 * s1;
    detail::conv1_row<S>(r0, s1, img, n, w1, shift);
    detail::conv1_row<S>(r1, s1, img += n, n, w1, shift);
    int32_t* pooled_row = pooled;
    for (uint32_t k = 0; k < s3; ++k) {
      for (int32_t* b = pair; b != pair_end; b += s2) {
        detail::conv1_row<S>(r2, s1, img += n, n, w1, shift);
        detail::conv3x3_row<S>(b, s2, r0, r1, r2, w2);
        int32_t* const t = r0;
        r0 = r1;
        r1 = r2;
        r2 = t;
      }
      pooled_row = detail::maxpool2x2_relu_shift(pair, 2, s2, shift, pooled_row);
    }
    detail::conv3x3<S>(pooled, s3, s3, w3, pooled);
    out = detail::maxpool2x2_relu_shift(pooled, s4, s4, shift, out);
  }
}

// int32 work words cnn_channel_block needs for an n x n image: the conv1 ring, the conv2 row
// pair and the pooled plane.
constexpr uint32_t cnn_work_words(uint32_t n) { return 3 * (n - 2) + 2 * (n - 4) + ((n - 4) / 2) * ((n - 4) / 2); }

constexpr uint32_t cnn_output_side(uint32_t n) { return ((n - 4) / 2 - 2) / 2; }

}  // namespace bitnetmcu
