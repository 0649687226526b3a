// SSE2 kernels of the host fast path (4 int32 lanes): every x86-64 CPU has SSE2, so this is
// the fast path of a portable build on a CPU without AVX2.
#include <emmintrin.h>
#include <stdint.h>

#include <type_traits>

#include "fast_layers.hpp"

namespace bitnetmcu {
namespace host {
namespace {

struct Ops {
  using V = __m128i;
  using Count = __m128i;
  static constexpr uint32_t kLanes = 4;
  static constexpr int kBigBlock = 8;  // 32 outputs in 8 accumulators (16 xmm registers)
  static V zero() { return _mm_setzero_si128(); }
  static V load(const void* p) { return _mm_loadu_si128(static_cast<const __m128i*>(p)); }
  static void store(void* p, V v) { _mm_storeu_si128(static_cast<__m128i*>(p), v); }
  static V set1(int32_t v) { return _mm_set1_epi32(v); }
  static V add(V a, V b) { return _mm_add_epi32(a, b); }
  static V madd(V a, V b) { return _mm_madd_epi16(a, b); }
  static V madd_add(V acc, V a, V b) { return add(acc, madd(a, b)); }
  static V max(V a, V b) {  // SSE2 has no pmaxsd
    const V gt = _mm_cmpgt_epi32(a, b);
    return _mm_or_si128(_mm_and_si128(gt, a), _mm_andnot_si128(gt, b));
  }
  static Count count(uint32_t s) { return _mm_cvtsi32_si128(static_cast<int>(s)); }
  static V relu_shift(V v, Count s) { return _mm_sra_epi32(_mm_andnot_si128(_mm_srai_epi32(v, 31), v), s); }
  static V pair(V lo, V hi) { return _mm_or_si128(lo, _mm_slli_epi32(hi, 16)); }
  static bool any_above(V v, int32_t limit) { return _mm_movemask_epi8(_mm_cmpgt_epi32(v, set1(limit))) != 0; }
};

#include "kernels.inc"

}  // namespace

const KernelSet kSse2Kernels = {"sse2", dense, cnn};

}  // namespace host
}  // namespace bitnetmcu
