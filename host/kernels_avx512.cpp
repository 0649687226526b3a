// AVX-512 kernels of the host fast path (16 int32 lanes, VNNI vpdpwssd = pmaddwd + add in one
// instruction). This file alone is compiled with the AVX-512 flags (host/CMakeLists.txt);
// FastModel calls it only when the CPU reports AVX-512 F, BW and VNNI.
#include <immintrin.h>
#include <stdint.h>

#include <type_traits>

#include "fast_layers.hpp"

namespace bitnetmcu {
namespace host {
namespace {

struct Ops {
  using V = __m512i;
  using Count = __m128i;
  static constexpr uint32_t kLanes = 16;
  static constexpr int kBigBlock = 8;  // 128 outputs in 8 accumulators (32 zmm registers)
  static V zero() { return _mm512_setzero_si512(); }
  static V load(const void* p) { return _mm512_loadu_si512(p); }
  static void store(void* p, V v) { _mm512_storeu_si512(p, v); }
  static V set1(int32_t v) { return _mm512_set1_epi32(v); }
  static V add(V a, V b) { return _mm512_add_epi32(a, b); }
  static V madd(V a, V b) { return _mm512_madd_epi16(a, b); }
  static V madd_add(V acc, V a, V b) { return _mm512_dpwssd_epi32(acc, a, b); }
  static V max(V a, V b) { return _mm512_max_epi32(a, b); }
  static Count count(uint32_t s) { return _mm_cvtsi32_si128(static_cast<int>(s)); }
  static V relu_shift(V v, Count s) { return _mm512_sra_epi32(_mm512_max_epi32(v, zero()), s); }
  static V pair(V lo, V hi) { return _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16)); }
  static bool any_above(V v, int32_t limit) { return _mm512_cmpgt_epi32_mask(v, set1(limit)) != 0; }
};

#include "kernels.inc"

}  // namespace

const KernelSet kAvx512Kernels = {"avx512", dense, cnn};

}  // namespace host
}  // namespace bitnetmcu
