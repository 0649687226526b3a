// AVX2 kernels of the host fast path (8 int32 lanes). This file alone is compiled with -mavx2
// (host/CMakeLists.txt); FastModel calls it only when the CPU reports AVX2.
#include <immintrin.h>
#include <stdint.h>

#include <type_traits>

#include "fast_layers.hpp"

namespace bitnetmcu {
namespace host {
namespace {

struct Ops {
  using V = __m256i;
  using Count = __m128i;
  static constexpr uint32_t kLanes = 8;
  static constexpr int kBigBlock = 8;  // 64 outputs in 8 accumulators (16 ymm registers)
  static V zero() { return _mm256_setzero_si256(); }
  static V load(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }
  static void store(void* p, V v) { _mm256_storeu_si256(static_cast<__m256i*>(p), v); }
  static V set1(int32_t v) { return _mm256_set1_epi32(v); }
  static V add(V a, V b) { return _mm256_add_epi32(a, b); }
  static V madd(V a, V b) { return _mm256_madd_epi16(a, b); }
  static V madd_add(V acc, V a, V b) { return add(acc, madd(a, b)); }
  static V max(V a, V b) { return _mm256_max_epi32(a, b); }
  static Count count(uint32_t s) { return _mm_cvtsi32_si128(static_cast<int>(s)); }
  static V relu_shift(V v, Count s) { return _mm256_sra_epi32(_mm256_max_epi32(v, zero()), s); }
  static V pair(V lo, V hi) { return _mm256_or_si256(lo, _mm256_slli_epi32(hi, 16)); }
  static bool any_above(V v, int32_t limit) {
    return _mm256_movemask_epi8(_mm256_cmpgt_epi32(v, set1(limit))) != 0;
  }
};

#include "kernels.inc"

}  // namespace

const KernelSet kAvx2Kernels = {"avx2", dense, cnn};

}  // namespace host
}  // namespace bitnetmcu
