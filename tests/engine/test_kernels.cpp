// Every fast kernel against its plain reference on thousands of random cases, bit-exact.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "bitnetmcu/bitnetmcu.hpp"

using namespace bitnetmcu;

namespace {

template <class S>
uint8_t random_code(std::mt19937& rng) {
  const unsigned n = S::code_bits ? (1u << S::code_bits) : 3u;
  return static_cast<uint8_t>(rng() % n);
}

// Random int8 vector where about `zero_share` of the entries equal `common` (zero after ReLU,
// or the image background), the rest uniform over the full int8 range.
std::vector<int8_t> random_input(std::mt19937& rng, size_t n, double zero_share, int8_t common) {
  std::uniform_real_distribution<double> u(0, 1);
  std::vector<int8_t> x(n);
  for (auto& v : x) v = u(rng) < zero_share ? common : static_cast<int8_t>(static_cast<int>(rng() % 256) - 128);
  return x;
}

// A random dense layer of trial `trial` for the kernel-vs-reference tests: codes (only the
// extreme ones every 7th trial, to hit the accumulator bounds) packed as rows (dense_ref) and as
// columns (the fast kernels), and inputs, about (trial % 5) / 5 of them equal to one common value
// (all -128 or 127 every 11th trial).
template <class S>
struct RandomDense {
  uint32_t n_in, n_out;
  std::vector<uint8_t> codes;
  std::vector<typename S::word_t> rows, cols;
  std::vector<int8_t> x;
  RandomDense(std::mt19937& rng, int trial, uint32_t max_in, uint32_t max_out)
      : n_in(1 + rng() % max_in), n_out(1 + rng() % max_out), codes(size_t(n_in) * n_out) {
    for (auto& c : codes) c = random_code<S>(rng);
    if (trial % 7 == 0)
      for (auto& c : codes) c = S::encode(trial % 2 ? 1e6f : -1e6f);
    rows.resize(size_t(n_out) * row_words<S>(n_in));
    for (uint32_t o = 0; o < n_out; ++o)
      pack_row<S>(codes.data() + size_t(o) * n_in, n_in, rows.data() + size_t(o) * row_words<S>(n_in));
    cols.resize(dense_weight_words<S>(n_in, n_out));
    std::vector<uint8_t> gather(n_out);
    pack_columns<S>(codes.data(), n_out, n_in, gather.data(), cols.data());
    const int8_t common = trial % 3 == 0 ? 0 : static_cast<int8_t>(static_cast<int>(rng() % 256) - 128);
    x = random_input(rng, n_in, (trial % 5) / 5.0, common);
    if (trial % 11 == 0) std::fill(x.begin(), x.end(), trial % 2 ? int8_t(-128) : int8_t(127));
  }
};

}  // namespace

TEMPLATE_TEST_CASE("dense (column layout) equals dense_ref (row layout)", "", Binary, Ternary, Sym2, Sym4, Int4, Int8,
                   FP130, NF4) {
  using S = TestType;
  std::mt19937 rng(42 + static_cast<unsigned>(S::id));
  for (int trial = 0; trial < 1500; ++trial) {
    const RandomDense<S> l(rng, trial, trial < 1000 ? 40 : 300, trial < 1000 ? 40 : 180);
    const int32_t offset = trial % 2 ? l.x[0] : 0;
    std::vector<int32_t> want(l.n_out), got(l.n_out, 0x5A5A5A5A);
    dense_ref<S>(l.rows.data(), l.n_in, l.n_out, l.x.data(), offset, want.data());
    dense<S>(l.cols.data(), l.n_in, l.n_out, l.x.data(), offset, got.data());
    INFO("n_in " << l.n_in << " n_out " << l.n_out << " trial " << trial);
    REQUIRE(got == want);
  }
}

// The bit-plane kernel on plane_columns words made from pack_columns: inputs on both sides of
// the offset (the second, complemented pass), runs past 15 inputs per plane, chunks past sum |a|
// = 4369 (many large inputs), layers wider than 64 outputs (the reference run on every target),
// extreme codes; the lane scratch must be zero again afterwards.
TEMPLATE_TEST_CASE("dense_planes (plane layout) equals dense_ref", "", Sym4, Int4) {
  using S = TestType;
  STATIC_REQUIRE(has_plane_traits<S>);
  STATIC_REQUIRE_FALSE(has_plane_traits<FP130>);
  std::mt19937 rng(7 + static_cast<unsigned>(S::id));
  for (int trial = 0; trial < 1500; ++trial) {
    const RandomDense<S> l(rng, trial, trial < 1000 ? 70 : 300, trial < 1000 ? 64 : 130);
    std::vector<uint32_t> planes(plane_column_words(l.n_in, l.n_out));
    plane_columns<S>(l.cols.data(), l.n_out, l.n_in, planes.data());
    const int32_t offset = trial % 4 == 0 ? 0 : (trial % 4 == 1 ? l.x[0] : (trial % 4 == 2 ? -128 : 127));
    std::vector<int32_t> want(l.n_out), got(l.n_out, 0x5A5A5A5A);
    std::vector<uint32_t> t(plane_scratch_words(l.n_out), 0);
    dense_ref<S>(l.rows.data(), l.n_in, l.n_out, l.x.data(), offset, want.data());
    const PlaneLayer layer{planes.data(), l.n_in, l.n_out, t.data()};
    dense_planes<S::plane_scale, S::plane_bias, true>(layer, l.x.data(), offset, got.data());
    INFO("n_in " << l.n_in << " n_out " << l.n_out << " trial " << trial << " offset " << offset);
    REQUIRE(got == want);
    REQUIRE(std::all_of(t.begin(), t.end(), [](uint32_t v) { return v == 0; }));
  }
}

TEMPLATE_TEST_CASE("plane_columns holds every code as its offset-binary value", "", Sym4, Int4) {
  using S = TestType;
  std::mt19937 rng(3);
  for (uint32_t n_out : {1u, 7u, 8u, 10u, 17u, 64u, 100u}) {
    const uint32_t n_in = 1 + rng() % 20;
    std::vector<uint8_t> codes(size_t(n_in) * n_out), gather(n_out);
    for (auto& c : codes) c = random_code<S>(rng);
    std::vector<uint32_t> cols(dense_weight_words<S>(n_in, n_out)), planes(plane_column_words(n_in, n_out));
    pack_columns<S>(codes.data(), n_out, n_in, gather.data(), cols.data());
    plane_columns<S>(cols.data(), n_out, n_in, planes.data());
    const uint32_t words = static_cast<uint32_t>(plane_words(n_out));
    for (uint32_t i = 0; i < n_in; ++i)
      for (uint32_t o = 0; o < words * 8; ++o) {
        const uint32_t u = (planes[i * words + o / 8] >> (4 * plane_nibble(o % 8))) & 15u;
        if (o >= n_out) {
          REQUIRE(u == 0);  // padding
        } else {
          REQUIRE(S::plane_scale * int32_t(u) - S::plane_bias == S::decode(codes[size_t(o) * n_in + i]));
        }
      }
  }
}

// Ternary adds four inputs' lane pairs packed (two outputs per int32) while sum |a| <= 32767
// and switches to int32 accumulators past it, mid-layer: inputs that reach the bound exactly,
// cross it in the middle of a group, and extreme weights (every lane at its largest).
TEST_CASE("Ternary: packed lane pairs equal dense_ref on both sides of the int16 bound") {
  using S = Ternary;
  std::mt19937 rng(99);
  for (int trial = 0; trial < 400; ++trial) {
    const uint32_t n_in = 130 + rng() % 200, n_out = 1 + rng() % 45;  // > 128: x[128] below
    std::vector<uint8_t> codes(size_t(n_in) * n_out);
    const int mode = trial % 4;  // 0: all +1, 1: all -1, 2: random, 3: +1/-1 by output
    for (size_t j = 0; j < codes.size(); ++j)
      codes[j] = mode == 0 ? 0 : mode == 1 ? 1 : mode == 2 ? static_cast<uint8_t>(rng() % 3) : static_cast<uint8_t>((j / n_in) % 2);
    std::vector<uint16_t> rows(size_t(n_out) * row_words<S>(n_in));
    for (uint32_t o = 0; o < n_out; ++o)
      pack_row<S>(codes.data() + size_t(o) * n_in, n_in, rows.data() + size_t(o) * row_words<S>(n_in));
    std::vector<uint16_t> cols(dense_weight_words<S>(n_in, n_out));
    std::vector<uint8_t> gather(n_out);
    pack_columns<S>(codes.data(), n_out, n_in, gather.data(), cols.data());
    // offset -128: a = x + 128; 128 inputs of 255 give 32640, one of 127 then reaches 32767.
    std::vector<int8_t> x(n_in, 127);
    if (trial % 3 == 0) x[128] = -1;                          // bound exactly 32767 after 129 inputs
    if (trial % 3 == 1) for (uint32_t i = 0; i < n_in; i += 2) x[i] = -128;  // zeros between
    if (trial % 5 == 0) for (auto& v : x) v = static_cast<int8_t>(static_cast<int>(rng() % 256) - 128);
    const int32_t offset = trial % 7 == 0 ? 0 : -128;
    std::vector<int32_t> want(n_out), got(n_out, 0x5A5A5A5A);
    dense_ref<S>(rows.data(), n_in, n_out, x.data(), offset, want.data());
    dense<S>(cols.data(), n_in, n_out, x.data(), offset, got.data());
    INFO("n_in " << n_in << " n_out " << n_out << " trial " << trial);
    REQUIRE(got == want);
  }
}

// The int16 tables (two entries per word) hold decode(c) * a for every input value a layer can
// see (int8 minus an int8 offset), exactly like the int32 tables; a = 0 through zero_table16.
TEMPLATE_TEST_CASE("fill_table16 equals fill_table for every a in [-255, 255]", "", Sym4, FP130, Int4) {
  using S = TestType;
  STATIC_REQUIRE(detail::int16_tables<S>);
  for (int32_t a = -255; a <= 255; ++a) {
    int32_t want[16];
    uint32_t words[8];
    detail::fill_table<S>(a, want);
    if (a)
      detail::fill_table16<S>(a, words);
    else
      detail::zero_table16(words);
    int16_t got[16];
    std::memcpy(got, words, sizeof got);
    for (uint32_t c = 0; c < 16; ++c) {
      INFO("a " << a << " code " << c);
      REQUIRE(got[c] == want[c]);
      REQUIRE(want[c] == S::decode(static_cast<uint8_t>(c)) * a);
    }
  }
}

TEMPLATE_TEST_CASE("dense_layer's background rewrite is exact", "", Binary, Ternary, Sym4, NF4) {
  using S = TestType;
  std::mt19937 rng(7);
  for (int trial = 0; trial < 300; ++trial) {
    const uint32_t n_in = 1 + rng() % 260, n_out = 1 + rng() % 70;
    std::vector<uint8_t> codes(size_t(n_in) * n_out);
    for (auto& c : codes) c = random_code<S>(rng);
    std::vector<typename S::word_t> cols(dense_weight_words<S>(n_in, n_out));
    std::vector<uint8_t> gather(n_out);
    pack_columns<S>(codes.data(), n_out, n_in, gather.data(), cols.data());
    std::vector<int32_t> rowsum(n_out, 0);
    for (uint32_t o = 0; o < n_out; ++o)
      for (uint32_t i = 0; i < n_in; ++i) rowsum[o] += S::decode(codes[size_t(o) * n_in + i]);
    const auto x = random_input(rng, n_in, 0.7, static_cast<int8_t>(static_cast<int>(rng() % 256) - 128));
    std::vector<int32_t> plain(n_out), rewritten(n_out);
    dense_layer<S>(cols.data(), nullptr, n_in, n_out, x.data(), plain.data());
    dense_layer<S>(cols.data(), rowsum.data(), n_in, n_out, x.data(), rewritten.data());
    REQUIRE(plain == rewritten);
  }
}

TEST_CASE("8bit: the multiplier-free nibble-table path equals the multiply path") {
  std::mt19937 rng(17);
  for (int trial = 0; trial < 3000; ++trial) {
    const uint32_t n_words = 1 + rng() % 20;
    std::vector<uint32_t> col(n_words);
    for (auto& w : col) w = static_cast<uint32_t>(rng());
    if (trial % 10 == 0) std::fill(col.begin(), col.end(), trial % 20 ? 0x80808080u : 0x7F7F7F7Fu);
    const int32_t a = trial % 13 == 0 ? -255 : static_cast<int32_t>(rng() % 511) - 255;
    std::vector<int32_t> with_mul(4 * n_words, 7), with_tables(4 * n_words, 7);
    detail::column_int8_mul(col.data(), n_words, a, with_mul.data());
    detail::column_int8_tables(col.data(), n_words, a, with_tables.data());
    REQUIRE(with_mul == with_tables);
  }
}

TEMPLATE_TEST_CASE("column layout: pack_columns/unpack_columns round trip, compact tails", "", Binary, Ternary, Sym2,
                   Sym4, Int8, NF4) {
  using S = TestType;
  std::mt19937 rng(19);
  const unsigned ncodes = S::code_bits ? (1u << S::code_bits) : 3u;
  for (int trial = 0; trial < 300; ++trial) {
    const uint32_t n_in = 1 + rng() % 70, n_out = 1 + rng() % 70;
    std::vector<uint8_t> codes(size_t(n_in) * n_out), back(codes.size()), gather(n_out);
    for (auto& c : codes) c = static_cast<uint8_t>(rng() % ncodes);
    std::vector<typename S::word_t> words(dense_weight_words<S>(n_in, n_out));
    pack_columns<S>(codes.data(), n_out, n_in, gather.data(), words.data());
    unpack_columns<S>(words.data(), n_out, n_in, back.data());
    REQUIRE(back == codes);
    // As compact as one stream of all codes, up to per-column word alignment of the full part.
    REQUIRE(words.size() <= S::words_for(size_t(n_in) * n_out) + 1);
  }
  // 64 -> 10 layer: 4-bit codes take 64 full words + 128 tail codes = 80 words (320 bytes).
  if (S::id == SchemeId::Sym4) REQUIRE(dense_weight_words<S>(64, 10) == 80);
}

// ---- ShiftNorm ------------------------------------------------------------------------------

namespace {
// SPEC §6 written out with 64-bit arithmetic and no shared helpers.
std::vector<int8_t> shiftnorm_spec(const std::vector<int32_t>& acc) {
  int64_t m = *std::max_element(acc.begin(), acc.end());
  int64_t v = std::max<int64_t>(m, 0) >> 7;
  int shift = 0;
  while (v > 0) ++shift, v >>= 1;
  std::vector<int8_t> out;
  for (int64_t a : acc) {
    const int64_t q = a < 0 ? 0 : std::min<int64_t>(127, (a + ((int64_t(1) << shift) >> 1)) >> shift);
    out.push_back(static_cast<int8_t>(q));
  }
  return out;
}
std::vector<int8_t> shiftnorm_engine(std::vector<int32_t> acc) {
  std::vector<int8_t> out(acc.size());
  shiftnorm_relu(acc.data(), static_cast<uint32_t>(acc.size()), out.data());
  // and in place, as the models use it
  shiftnorm_relu(acc.data(), static_cast<uint32_t>(acc.size()), reinterpret_cast<int8_t*>(acc.data()));
  REQUIRE(std::equal(out.begin(), out.end(), reinterpret_cast<int8_t*>(acc.data())));
  return out;
}
}  // namespace

TEST_CASE("shiftnorm_relu: edge cases") {
  // All negative: shift 0, everything clamps to 0.
  REQUIRE(shiftnorm_engine({-5, -1, -100000}) == std::vector<int8_t>{0, 0, 0});
  // Maximum exactly 127: 127 >> 7 = 0, shift 0, values unchanged.
  REQUIRE(shiftnorm_engine({127, 3, -2}) == std::vector<int8_t>{127, 3, 0});
  // Maximum exactly 128: bit_length(1) = 1, shift 1 with rounding: (128+1)>>1 = 64, (3+1)>>1 = 2.
  REQUIRE(shiftnorm_engine({128, 3, 1}) == std::vector<int8_t>{64, 2, 1});
  // 255 -> shift 1 -> (255+1)>>1 = 128 -> clamped to 127.
  REQUIRE(shiftnorm_engine({255, 0}) == std::vector<int8_t>{127, 0});
  // Near the int32 bound: 2^31-1 -> bit_length(2^24-1) = 24; rounding must not overflow badly.
  REQUIRE(shiftnorm_engine({INT32_MAX - 9000000, 1 << 24, -1}) ==
          std::vector<int8_t>{127, 1, 0});
  REQUIRE(shiftnorm_engine({INT32_MAX, -INT32_MAX}) == std::vector<int8_t>{127, 0});
  REQUIRE(shiftnorm_engine({0, 0}) == std::vector<int8_t>{0, 0});
}

TEST_CASE("shiftnorm_relu equals the SPEC formula on random vectors") {
  std::mt19937 rng(99);
  for (int trial = 0; trial < 5000; ++trial) {
    const size_t n = 1 + rng() % 200;
    const int bits = 1 + static_cast<int>(rng() % 30);
    std::vector<int32_t> acc(n);
    for (auto& a : acc) a = static_cast<int32_t>(rng() % (2u << bits)) - (1 << bits);
    REQUIRE(shiftnorm_engine(acc) == shiftnorm_spec(acc));
  }
}

TEST_CASE("argmax returns the first maximum") {
  const int32_t v[] = {3, 9, -1, 9, 2};
  REQUIRE(argmax(v, 5) == 1);
  const int32_t w[] = {-7, -7};
  REQUIRE(argmax(w, 2) == 0);
}

TEST_CASE("mul_const and mul_shift_add equal multiplication") {
  std::mt19937 rng(5);
  for (int i = 0; i < 20000; ++i) {
    const int32_t a = static_cast<int32_t>(rng() % 65536) - 32768, b = static_cast<int32_t>(rng() % 513) - 256;
    REQUIRE(mul_shift_add(a, b) == a * b);
    REQUIRE(mul_i32(a, b) == a * b);
  }
  REQUIRE(mul_const<-185>(1234) == -185 * 1234);
  REQUIRE(mul_const<113>(-77) == 113 * -77);
  REQUIRE(mul_const<15>(-128) == -1920);
}

// The signed-digit programs of the conv rows on RV32EC: every weight any conv scheme decodes to
// (|k| <= 256), times values over the whole int32 range (the product wraps like the hardware's).
TEST_CASE("mul_by_program(v, mul_program(k)) equals v * k") {
  std::mt19937 rng(6);
  for (int32_t k = -256; k <= 256; ++k) {
    const MulProgram m = mul_program(k);
    INFO("k " << k);
    REQUIRE((m.pos >> 24) == 0);  // at most six 4-bit steps and the end mark
    for (int i = 0; i < 200; ++i) {
      const int32_t v = i < 100 ? static_cast<int32_t>(rng() % 4097) - 2048 : static_cast<int32_t>(rng());
      const int32_t want = static_cast<int32_t>(static_cast<uint32_t>(v) * static_cast<uint32_t>(k));
      REQUIRE(mul_by_program(v, m) == want);
    }
    REQUIRE(mul_by_program(INT32_MIN, m) == static_cast<int32_t>(0x80000000u * static_cast<uint32_t>(k)));
  }
}

// ---- conv / pool / CNN block ------------------------------------------------------------------

namespace {
// Plain 3x3 valid conv + ReLU + shift, separate output buffer.
std::vector<int32_t> conv_spec(const std::vector<int32_t>& in, int n, const int32_t* k, int shift) {
  std::vector<int32_t> out((n - 2) * (n - 2));
  for (int y = 0; y < n - 2; ++y)
    for (int x = 0; x < n - 2; ++x) {
      int64_t s = 0;
      for (int ky = 0; ky < 3; ++ky)
        for (int kx = 0; kx < 3; ++kx) s += int64_t(k[ky * 3 + kx]) * in[(y + ky) * n + x + kx];
      out[y * (n - 2) + x] = static_cast<int32_t>(s < 0 ? 0 : (s >> shift));
    }
  return out;
}
std::vector<int32_t> pool_spec(const std::vector<int32_t>& in, int n) {
  std::vector<int32_t> out((n / 2) * (n / 2));
  for (int y = 0; y < n / 2; ++y)
    for (int x = 0; x < n / 2; ++x)
      out[y * (n / 2) + x] = std::max({in[2 * y * n + 2 * x], in[2 * y * n + 2 * x + 1], in[(2 * y + 1) * n + 2 * x],
                                       in[(2 * y + 1) * n + 2 * x + 1]});
  return out;
}
}  // namespace

TEMPLATE_TEST_CASE("cnn_channel_block equals conv/pool written out per SPEC", "", Int8, FP130) {
  using S = TestType;
  std::mt19937 rng(11);
  for (int trial = 0; trial < 60; ++trial) {
    const uint32_t channels = 1 + rng() % 12, shift = 3 + rng() % 3;
    std::vector<int8_t> image(256);
    std::vector<uint8_t> codes(27 * channels);
    std::vector<int32_t> w(27 * channels);
    for (auto& v : image) v = static_cast<int8_t>(static_cast<int>(rng() % 256) - 128);
    for (size_t i = 0; i < codes.size(); ++i) {
      codes[i] = static_cast<uint8_t>(rng() % (S::id == SchemeId::Int8 ? 256 : 16));
      // the weight value, from SPEC §4/§5 directly: int8 byte, or +-2^e for [sign | e]
      w[i] = S::id == SchemeId::Int8 ? static_cast<int8_t>(codes[i])
                                     : ((codes[i] & 8) ? -1 : 1) * (1 << (codes[i] & 7));
    }
    std::vector<int32_t> work(cnn_work_words(16)), got(channels * 4);
    cnn_layer<S>(codes.data(), 16, channels, shift, image.data(), work.data(), got.data());
    for (uint32_t c = 0; c < channels; ++c) {
      std::vector<int32_t> p(image.begin(), image.end());
      p = conv_spec(p, 16, &w[c * 9], static_cast<int>(shift));
      p = conv_spec(p, 14, &w[(channels + c) * 9], static_cast<int>(shift));
      p = pool_spec(p, 12);
      p = conv_spec(p, 6, &w[(2 * channels + c) * 9], static_cast<int>(shift));
      p = pool_spec(p, 4);
      for (int i = 0; i < 4; ++i) REQUIRE(got[c * 4 + i] == p[i]);
    }
  }
}

TEMPLATE_TEST_CASE("cnn_channel_block equals its reference twin on random sides and shifts", "", Int8, FP130) {
  using S = TestType;
  std::mt19937 rng(17);
  for (int trial = 0; trial < 200; ++trial) {
    const uint32_t side = 8 + rng() % 57, channels = 1 + rng() % 4;
    const uint32_t shift = 4 + rng() % 4;  // cnn_acc_bound: no int32 overflow from 4 up
    std::vector<int8_t> image(side * side);
    const int8_t background = static_cast<int8_t>(static_cast<int>(rng() % 256) - 128);
    for (auto& v : image) v = rng() % 3 ? background : static_cast<int8_t>(static_cast<int>(rng() % 256) - 128);
    std::vector<uint8_t> codes(27 * channels);
    for (auto& c : codes) c = static_cast<uint8_t>(rng() % (S::id == SchemeId::Int8 ? 256 : 16));
    const uint32_t so = cnn_output_side(side), per = 9 * channels;
    // the streamed block gets exactly cnn_work_words(side), then guard words it must not touch
    const uint32_t guard = 8, sentinel = 0x5A5A5A5A;
    std::vector<int32_t> work(cnn_work_words(side) + guard, static_cast<int32_t>(sentinel));
    std::vector<int32_t> plane((side - 2) * (side - 2)), got(channels * so * so), want(got.size());
    cnn_channel_block<S>(image.data(), side, channels, codes.data(), codes.data() + per, codes.data() + 2 * per, shift,
                         work.data(), got.data());
    cnn_channel_block_ref<S>(image.data(), side, channels, codes.data(), codes.data() + per, codes.data() + 2 * per,
                             shift, plane.data(), want.data());
    REQUIRE(got == want);
    for (uint32_t i = 0; i < guard; ++i) REQUIRE(work[cnn_work_words(side) + i] == static_cast<int32_t>(sentinel));
  }
}
