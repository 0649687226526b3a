// A scheme's quantizer as a sorted table, derived from its traits (schemes.hpp): thresholds
// t[0..count-2], levels l[0..count-1] and their codes, such that for every float v that is not
// NaN
//     encode(v) == codes[i] and value(encode(v)) == levels[i],   i = #{j : t[j] <= v}.
// Training quantizes whole tensors through this table (training/qat.cpp, and the bitnetmcu
// module's Scheme.quantize for python/bitnetmcu_torch/quant.py), so the per-scheme rounding
// rules live only in encode(). Each threshold is found by bisection over the ordered float bit
// patterns against encode() itself, so the table is exact, ties and signed zeros included.
// It relies on value(encode(v)) being non-decreasing in v, true of every scheme (tests/engine
// checks the table against encode around every threshold and on random floats).
// Why a table and not a loop over encode(): encode's rounding branches mispredict on random
// weights; the branch-free search below is 2-8x faster, as fast as the vectorized torch
// expressions it replaced in the trainer.
//
// Host-side helper: not included by bitnetmcu.hpp, never needed on the chip. Freestanding all
// the same (compiler builtins only, no heap).
#pragma once
#include "schemes.hpp"

namespace bitnetmcu {

struct LevelTable {
  static constexpr int kMaxLevels = 256;  // codes are 8 bits at most
  int count = 0;                          // distinct levels
  int search_size = 1;                    // power of two >= count; entries past count repeat the top
  float thresholds[kMaxLevels - 1] = {};  // search_size - 1 used; +inf past count - 1
  float levels[kMaxLevels] = {};
  uint8_t codes[kMaxLevels] = {};
  uint8_t nan_code = 0;    // encode(NaN), which no threshold describes
  float nan_level = 0.0f;  // value(encode(NaN))

  // #{j : thresholds[j] <= v} (clamped to count - 1), branch-free; v not NaN.
  int index(float v) const {
    int i = 0;
    for (int step = search_size / 2; step > 0; step >>= 1) i += thresholds[i + step - 1] <= v ? step : 0;
    return i;
  }
  uint8_t code(float v) const { return v != v ? nan_code : codes[index(v)]; }
  float level(float v) const { return v != v ? nan_level : levels[index(v)]; }
};

namespace detail {
// Order-preserving map of the non-NaN floats onto uint32 (-inf lowest, -0 just below +0).
inline uint32_t float_key(float f) {
  uint32_t b = 0;
  __builtin_memcpy(&b, &f, sizeof b);
  return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}
inline float key_float(uint32_t k) {
  const uint32_t b = (k & 0x80000000u) ? (k & 0x7FFFFFFFu) : ~k;
  float f = 0.0f;
  __builtin_memcpy(&f, &b, sizeof f);
  return f;
}
}  // namespace detail

template <class S>
LevelTable level_table() {
  LevelTable t;
  auto level_at = [](uint32_t key) { return S::value(S::encode(detail::key_float(key))); };
  const uint32_t last = detail::float_key(__builtin_inff());
  uint32_t key = detail::float_key(-__builtin_inff());
  t.codes[0] = S::encode(detail::key_float(key));
  t.levels[0] = S::value(t.codes[0]);
  t.count = 1;
  const float top = level_at(last);
  while (t.levels[t.count - 1] < top && t.count < LevelTable::kMaxLevels) {
    // the smallest key above `key` whose level is higher: level_at(lo) is not, level_at(hi) is
    const float below = t.levels[t.count - 1];
    uint32_t lo = key, hi = last;
    while (hi - lo > 1) {
      const uint32_t mid = lo + (hi - lo) / 2;
      (level_at(mid) > below ? hi : lo) = mid;
    }
    key = hi;
    t.thresholds[t.count - 1] = detail::key_float(key);
    t.codes[t.count] = S::encode(detail::key_float(key));
    t.levels[t.count] = S::value(t.codes[t.count]);
    ++t.count;
  }
  while (t.search_size < t.count) t.search_size *= 2;
  for (int i = t.count - 1; i < t.search_size - 1; ++i) t.thresholds[i] = __builtin_inff();
  for (int i = t.count; i < t.search_size; ++i) t.levels[i] = t.levels[t.count - 1], t.codes[i] = t.codes[t.count - 1];
  t.nan_code = S::encode(__builtin_nanf(""));
  t.nan_level = S::value(t.nan_code);
  return t;
}

// The table of the scheme with the given id (through visit_scheme; nothing restated).
inline LevelTable level_table(SchemeId id) {
  LevelTable t;
  visit_scheme(id, [&](auto s) { t = level_table<decltype(s)>(); });
  return t;
}

}  // namespace bitnetmcu
