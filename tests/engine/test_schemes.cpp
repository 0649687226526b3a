// Scheme traits: hand-computed golden vectors (SPEC §4/§5 worked by hand, not produced by
// the code under test), encode edge cases, and pack/unpack round trips with padding.
#include <catch2/catch.hpp>

#include <cstdint>
#include <random>
#include <vector>

#include "bitnetmcu/bitnetmcu.hpp"

using namespace bitnetmcu;

namespace {
// Dot product of one packed row with x through the reference kernel.
template <class S>
int32_t ref_dot(const std::vector<typename S::word_t>& row, const std::vector<int8_t>& x) {
  int32_t acc = 0;
  dense_ref<S>(row.data(), static_cast<uint32_t>(x.size()), 1, x.data(), 0, &acc);
  return acc;
}
template <class S>
std::vector<typename S::word_t> pack(const std::vector<uint8_t>& codes) {
  std::vector<typename S::word_t> w(row_words<S>(codes.size()));
  REQUIRE(pack_row<S>(codes.data(), codes.size(), w.data()) == w.size());
  return w;
}
}  // namespace

TEST_CASE("golden: Binary row [+1,-1,+1,+1] packs MSB-first and pads with 0") {
  const auto w = pack<Binary>({1, 0, 1, 1});
  REQUIRE(w == std::vector<uint32_t>{0xB0000000u});
  REQUIRE(ref_dot<Binary>(w, {1, 2, 3, 4}) == 6);  // 1 - 2 + 3 + 4
}

TEST_CASE("golden: 2bitsym +0.5,+1.5,-0.5,-1.5") {
  REQUIRE(Sym2::encode(0.7f) == 0b00);   // round(0.2) = 0 -> +0.5
  REQUIRE(Sym2::encode(1.6f) == 0b01);   // round(1.1) = 1 -> +1.5
  REQUIRE(Sym2::encode(-0.2f) == 0b10);  // round(-0.7) = -1 -> -0.5
  REQUIRE(Sym2::encode(-9.0f) == 0b11);  // clamp -> -2 -> -1.5
  const auto w = pack<Sym2>({0b00, 0b01, 0b10, 0b11});
  REQUIRE(w == std::vector<uint32_t>{0x1B000000u});
  REQUIRE(ref_dot<Sym2>(w, {10, 20, 30, 40}) == -80);  // 10 + 60 - 30 - 120
}

TEST_CASE("golden: 4bitsym") {
  REQUIRE(Sym4::encode(0.3f) == 0x0);     // round(-0.2) = 0 -> +0.5
  REQUIRE(Sym4::encode(-0.01f) == 0x8);   // round(-0.51) = -1 -> -0.5
  REQUIRE(Sym4::encode(100.f) == 0x7);    // clamp 7 -> +7.5
  REQUIRE(Sym4::encode(-100.f) == 0xF);   // clamp -8 -> -7.5
  REQUIRE(Sym4::encode(4.0f) == 0x4);     // round(3.5) = 4 (half to even) -> +4.5
  REQUIRE(Sym4::encode(3.0f) == 0x2);     // round(2.5) = 2 (half to even) -> +2.5
  const auto w = pack<Sym4>({0x0, 0xF, 0x3, 0x8});
  REQUIRE(w == std::vector<uint32_t>{0x0F380000u});
  REQUIRE(ref_dot<Sym4>(w, {2, -1, 3, 5}) == 33);  // 2*1 + (-1)(-15) + 3*7 + 5*(-1)
}

TEST_CASE("golden: 4bit two's complement") {
  REQUIRE(Int4::encode(-8.4f) == 0x8);
  REQUIRE(Int4::encode(2.5f) == 0x2);  // half to even
  REQUIRE(Int4::encode(-0.5f) == 0x0);
  const auto w = pack<Int4>({0x8, 0x7, 0x0, 0xF, 0x3});
  REQUIRE(w == std::vector<uint32_t>{0x870F3000u});
  REQUIRE(ref_dot<Int4>(w, {1, 2, 3, 4, 5}) == 17);  // -8 + 14 + 0 - 4 + 15
}

TEST_CASE("golden: 8bit") {
  REQUIRE(Int8::encode(-300.f) == 0x80);
  REQUIRE(Int8::encode(126.5f) == 0x7E);  // half to even
  const auto w = pack<Int8>({0x80, 0x7F, 0xFF, 0x05});
  REQUIRE(w == std::vector<uint32_t>{0x807FFF05u});
  REQUIRE(ref_dot<Int8>(w, {1, 1, 2, 3}) == 12);  // -128 + 127 - 2 + 15
}

TEST_CASE("golden: FP130") {
  REQUIRE(FP130::encode(0.3f) == 0x0);    // floor(log2) < 0 -> clamp 0 -> +1
  REQUIRE(FP130::encode(-3.9f) == 0x9);   // e = 1, negative
  REQUIRE(FP130::encode(4.0f) == 0x2);    // exactly 2^2
  REQUIRE(FP130::encode(1000.f) == 0x7);  // clamp 7
  const auto w = pack<FP130>({0x0, 0x9, 0x7, 0xF});
  REQUIRE(w == std::vector<uint32_t>{0x097F0000u});
  REQUIRE(ref_dot<FP130>(w, {3, 3, 1, -1}) == 253);  // 3 - 6 + 128 + 128
}

TEST_CASE("golden: NF4") {
  REQUIRE(NF4::encode(-2.0f) == 0);
  REQUIRE(NF4::encode(0.01f) == 7);
  REQUIRE(NF4::encode(0.0398f) == 8);   // exactly the midpoint of 0 and 0.0796 goes up
  REQUIRE(NF4::encode(0.0397f) == 7);
  REQUIRE(NF4::encode(0.9f) == 15);     // midpoint of 0.723 and 1.0 is 0.8615
  REQUIRE(NF4::decode(8) == 20);        // round(0.0796 * 256) = round(20.38)
  const auto w = pack<NF4>({0, 7, 15, 8});
  REQUIRE(w == std::vector<uint32_t>{0x07F87777u});  // 4 pad slots hold code 7 (level 0.0)
  REQUIRE(ref_dot<NF4>(w, {1, 5, 2, 10}) == 456);  // -256 + 0 + 512 + 200
}

TEST_CASE("golden: Ternary 10 trits in one 16-bit word") {
  REQUIRE(Ternary::encode(0.5f) == 2);   // round(0.5) = 0 (half to even) -> zero trit
  REQUIRE(Ternary::encode(1.5f) == 0);   // round = 2, clamp 1 -> +1 -> trit 0
  REQUIRE(Ternary::encode(-0.51f) == 1); // -1 -> trit 1
  // weights +1 -1 0 +1 0 0 0 0 0 -1 -> trits 0 1 2 0 2 2 2 2 2 1
  // v = 3^8 + 2*3^7 + 2*(3^5+3^4+3^3+3^2+3) + 1 = 11662; ceil(11662*65536/59049) = 12944
  const auto w = pack<Ternary>({0, 1, 2, 0, 2, 2, 2, 2, 2, 1});
  REQUIRE(w == std::vector<uint16_t>{12944});
  REQUIRE(ref_dot<Ternary>(w, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10}) == -7);  // 1 - 2 + 4 - 10
}

TEST_CASE("scheme names round-trip through scheme_from_name") {
  const char* names[] = {"Binary", "Ternary", "2bitsym", "4bitsym", "4bit", "8bit", "FP130", "NF4"};
  for (int i = 0; i < kNumSchemes; ++i) {
    SchemeId id{};
    REQUIRE(scheme_from_name(names[i], &id));
    REQUIRE(static_cast<int>(id) == i);
    REQUIRE(std::string(scheme_name(id)) == names[i]);
  }
  SchemeId id{};
  REQUIRE_FALSE(scheme_from_name("3bit", &id));
  REQUIRE_FALSE(scheme_from_name("", &id));
}

TEMPLATE_TEST_CASE("pack/unpack round trip with padding", "", Binary, Ternary, Sym2, Sym4, Int4, Int8, FP130, NF4) {
  using S = TestType;
  std::mt19937 rng(1234);
  const unsigned ncodes = S::code_bits ? (1u << S::code_bits) : 3u;
  for (size_t n : {1u, 2u, 9u, 10u, 11u, 19u, 31u, 32u, 33u, 63u, 64u, 65u, 100u, 257u}) {
    std::vector<uint8_t> codes(n);
    for (auto& c : codes) c = static_cast<uint8_t>(rng() % ncodes);
    std::vector<typename S::word_t> words(row_words<S>(n));
    pack_row<S>(codes.data(), n, words.data());
    std::vector<uint8_t> back(n);
    unpack_row<S>(words.data(), n, back.data());
    REQUIRE(back == codes);
    // Padding slots hold the pad code (the zero code where the scheme has one).
    const size_t padded = words.size() * S::codes_per_word;
    for (size_t i = n; i < padded; ++i) REQUIRE(S::code_at(words.data(), i) == S::pad_code);
    if (S::has_zero) REQUIRE(S::decode(S::pad_code) == 0);
  }
}

TEMPLATE_TEST_CASE("encode(value(c)) == c and |decode| <= max_abs", "", Binary, Ternary, Sym2, Sym4, Int4, Int8, FP130, NF4) {
  using S = TestType;
  const unsigned ncodes = S::code_bits ? (1u << S::code_bits) : 3u;
  for (unsigned c = 0; c < ncodes; ++c) {
    REQUIRE(S::encode(S::value(static_cast<uint8_t>(c))) == c);
    const int32_t d = S::decode(static_cast<uint8_t>(c));
    REQUIRE((d <= S::max_abs && -d <= S::max_abs));
  }
}

TEST_CASE("padding without a zero code adds nothing when the padded activations are zero") {
  // 4bitsym row of 5 weights, packed to 8 slots: slots 5..7 carry the pad code (+0.5).
  const std::vector<uint8_t> codes{0x1, 0x9, 0x2, 0xA, 0x3};
  const auto w = pack<Sym4>(codes);
  std::vector<int8_t> x{1, 1, 1, 1, 1, 0, 0, 0};  // the engine keeps padded slots at zero
  int32_t acc8 = 0, acc5 = 0;
  dense_ref<Sym4>(w.data(), 8, 1, x.data(), 0, &acc8);
  dense_ref<Sym4>(w.data(), 5, 1, x.data(), 0, &acc5);
  REQUIRE(acc8 == acc5);
  REQUIRE(acc5 == 3 - 3 + 5 - 5 + 7);
}

TEST_CASE("preprocess: resize weights of 28 -> 16, worked by hand from PIL's triangle filter") {
  std::vector<float> r(16 * 28);
  resize_weights(28, 16, r.data());
  // Output 0: centre 0.875, support 1.75, taps 0..2 with 1-|i-0.375|/1.75 = 11/14, 9/14, 1/14 over 3/2.
  REQUIRE(r[0] == Approx(11.0 / 21).margin(1e-6));
  REQUIRE(r[1] == Approx(9.0 / 21).margin(1e-6));
  REQUIRE(r[2] == Approx(1.0 / 21).margin(1e-6));
  REQUIRE(r[3] == 0.0f);
  for (int o = 0; o < 16; ++o) {
    double sum = 0;
    for (int i = 0; i < 28; ++i) sum += r[o * 28 + i];
    REQUIRE(sum == Approx(1.0).margin(1e-6));
  }
  // Symmetry: output 15 mirrors output 0.
  for (int i = 0; i < 28; ++i) REQUIRE(r[15 * 28 + i] == Approx(r[27 - i]).margin(1e-6));
}

TEST_CASE("preprocess: input quantization, half to even, guard for blank images") {
  const float x[] = {1.0f, -2.0f, 0.5f, 0.0f};
  int8_t q[4];
  quantize_input(x, 4, q);  // s = 127 / 2 = 63.5
  REQUIRE(q[0] == 64);      // 63.5 -> 64 (even)
  REQUIRE(q[1] == -127);
  REQUIRE(q[2] == 32);      // 31.75
  REQUIRE(q[3] == 0);
  const float blank[] = {0.0f, 0.0f};
  quantize_input(blank, 2, q);
  REQUIRE((q[0] == 0 && q[1] == 0));
}
