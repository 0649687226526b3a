// level_table (bitnetmcu/level_table.hpp) against the traits it is derived from: every float
// around every threshold, the special values and a spread of random floats and bit patterns
// give encode()'s code and value()'s level.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "bitnetmcu/bitnetmcu.hpp"
#include "bitnetmcu/level_table.hpp"

using namespace bitnetmcu;

namespace {
template <class S>
void check_table() {
  const LevelTable t = level_table<S>();
  INFO("scheme " << S::name << ", " << t.count << " levels");
  for (int i = 0; i + 1 < t.count; ++i) REQUIRE(t.levels[i] < t.levels[i + 1]);
  for (int i = 0; i + 2 < t.count; ++i) REQUIRE(t.thresholds[i] < t.thresholds[i + 1]);
  const float inf = std::numeric_limits<float>::infinity();
  std::vector<float> probes = {0.0f, -0.0f, inf, -inf, std::numeric_limits<float>::max(),
                               -std::numeric_limits<float>::max(), std::numeric_limits<float>::denorm_min(),
                               -std::numeric_limits<float>::denorm_min()};
  for (int i = 0; i + 1 < t.count; ++i) {
    float v = t.thresholds[i];
    for (int k = 0; k < 3; ++k) v = std::nextafter(v, -inf);
    for (int k = 0; k < 7; ++k, v = std::nextafter(v, inf)) probes.push_back(v);
  }
  std::mt19937 rng(7);
  for (int k = 0; k < 20000; ++k) {
    const uint32_t bits = static_cast<uint32_t>(rng());
    float f;
    std::memcpy(&f, &bits, sizeof f);
    if (!std::isnan(f)) probes.push_back(f);
    probes.push_back(std::ldexp(static_cast<float>(static_cast<int32_t>(rng() % 4001) - 2000), -3));
  }
  for (const float v : probes) {
    INFO("v = " << v);
    REQUIRE(t.code(v) == S::encode(v));
    REQUIRE(t.level(v) == S::value(S::encode(v)));
  }
  const float nan = std::numeric_limits<float>::quiet_NaN();
  REQUIRE(t.code(nan) == S::encode(nan));
  REQUIRE(t.level(nan) == S::value(S::encode(nan)));
}
}  // namespace

TEST_CASE("level_table: every scheme's table reproduces encode and value") {
  for (int id = 0; id < kNumSchemes; ++id)
    visit_scheme(static_cast<SchemeId>(id), [](auto s) { check_table<decltype(s)>(); });
}

TEST_CASE("level_table: level counts and hand-checked thresholds") {
  CHECK(level_table<Binary>().count == 2);
  CHECK(level_table<Ternary>().count == 3);
  CHECK(level_table<Sym2>().count == 4);
  CHECK(level_table<Int8>().count == 256);
  CHECK(level_table<NF4>().count == 16);
  CHECK(level_table<Ternary>().search_size == 4);
  // Binary: v >= 0 is +1, and -0.0 >= 0 too, so the threshold is -0.0.
  const LevelTable b = level_table<Binary>();
  CHECK(b.thresholds[0] == 0.0f);
  CHECK(std::signbit(b.thresholds[0]));
  // Ternary rounds half to even: 0.5 -> 0, so +1 starts just above 0.5; -0.5 -> 0 already.
  const LevelTable tr = level_table<Ternary>();
  CHECK(tr.thresholds[0] == -0.5f);
  CHECK(tr.thresholds[1] == std::nextafter(0.5f, 1.0f));
  CHECK(tr.level(std::numeric_limits<float>::infinity()) == 1.0f);  // the padded search slot
  // FP130: levels -128..-1 (indices 0-7), +1 (8), +2 from v = 2.0
  const LevelTable fp = level_table<FP130>();
  CHECK(fp.levels[fp.count - 1] == 128.0f);
  CHECK(fp.thresholds[8] == 2.0f);
}
