// Weight quantization schemes: one traits struct per scheme (SPEC §4, §5).
//
// Each row of this "table" says everything the rest of the project needs to know about a
// scheme: how a scaled float becomes a code (encode), what integer the kernels use for a code
// (decode), the float value training uses (value), and how codes are packed into words.
// Kernels, the exporter, the trainer's parity tests and the Python module all call these.
// Freestanding: <stdint.h> only, everything constexpr.
#pragma once
#include <stddef.h>
#include <stdint.h>

namespace bitnetmcu {

enum class SchemeId : uint8_t { Binary = 0, Ternary, Sym2, Sym4, Int4, Int8, FP130, NF4 };
constexpr int kNumSchemes = 8;

// How the trainer turns a float weight w into the value passed to encode():
//   MeanCentered : v = w - mean(w)               (Binary)
//   InvMeanAbs   : v = w / mean|w|               (Ternary)
//   Clip         : v = w * clip_numerator / s     (s = octav/prop clipping scalar)
enum class ScaleRule : uint8_t { MeanCentered, InvMeanAbs, Clip };

namespace detail {
// Round half to even, as torch.round / numpy.round do. |v| is clamped first so the cast is safe.
constexpr int32_t round_half_even(float v) {
  if (v != v) return 0;  // NaN
  if (v > 1e6f) v = 1e6f;
  if (v < -1e6f) v = -1e6f;
  int32_t f = static_cast<int32_t>(v);
  if (static_cast<float>(f) > v) f -= 1;  // floor
  const float frac = v - static_cast<float>(f);
  if (frac > 0.5f) return f + 1;
  if (frac < 0.5f) return f;
  return (f & 1) ? f + 1 : f;
}
constexpr int32_t clamp(int32_t v, int32_t lo, int32_t hi) { return v < lo ? lo : (v > hi ? hi : v); }
constexpr int32_t sign_extend(uint32_t code, unsigned bits) {
  return static_cast<int32_t>(code << (32 - bits)) >> (32 - bits);
}
}  // namespace detail

// log2 of a power of two (0 for 1), for packing shifts.
constexpr unsigned log2_exact(uint32_t v) {
  unsigned n = 0;
  while (v > 1u) v >>= 1, ++n;
  return n;
}

// Which fast dense kernel reads a scheme's weights (kernels/dense.hpp dispatches on this, never
// on the scheme id):
//   PairBits : 1- and 2-bit codes, two outputs per lookup from pair tables
//   Nibble   : 4-bit codes, one table of 16 multiples per input, groups of four inputs
//   Trits    : base-3 words (Ternary), trit-pair tables, pairs of inputs
//   Bytes    : one signed byte per weight (8bit): multiply, or nibble tables without one
enum class DenseFamily : uint8_t { PairBits, Nibble, Trits, Bytes };

// How the kernels build the multiples t[c] = decode(c) * a of an input a:
//   OddMultiples : [sign | mag] codes, +-(2 mag + 1) a by repeated addition (symmetric schemes)
//   PowersOfTwo  : [sign | e] codes, +-(a << e): shift-only weights (FP130; conv taps too)
//   Integers     : two's complement codes, c * a by repeated addition, (c - 2^bits) * a below
//   Constants    : any other levels, one constant shift-and-add chain per code
enum class Multiples : uint8_t { OddMultiples, PowersOfTwo, Integers, Constants };

// ---- packing families ------------------------------------------------------------------------

// `Bits` bits per code in 32-bit words, first code in the most significant bits (SPEC §5).
// Trailing slots of the last word hold `pad` codes.
template <unsigned Bits>
struct BitPacking {
  using word_t = uint32_t;
  static constexpr unsigned code_bits = Bits;
  static constexpr unsigned codes_per_word = 32 / Bits;
  static constexpr unsigned log2_code_bits = log2_exact(Bits);
  static constexpr unsigned log2_codes_per_word = log2_exact(32 / Bits);
  static constexpr size_t words_for(size_t n) { return (n + codes_per_word - 1) / codes_per_word; }
  static constexpr size_t pack(const uint8_t* codes, size_t n, uint8_t pad, word_t* out) {
    const size_t nw = words_for(n);
    for (size_t w = 0; w < nw; ++w) {
      word_t word = 0;
      for (unsigned j = 0; j < codes_per_word; ++j) {
        const size_t i = w * codes_per_word + j;
        const uint32_t c = (i < n ? codes[i] : pad) & ((1u << Bits) - 1u);
        word |= c << (32 - Bits * (j + 1));
      }
      out[w] = word;
    }
    return nw;
  }
  static constexpr uint8_t code_at(const word_t* words, size_t i) {
    const word_t w = words[i / codes_per_word];
    const unsigned j = static_cast<unsigned>(i % codes_per_word);
    return static_cast<uint8_t>((w >> (32 - Bits * (j + 1))) & ((1u << Bits) - 1u));
  }
};

// Ternary: 10 trits per 16-bit word in a base-3 fixed-point fraction (SPEC §5).
struct TritPacking {
  using word_t = uint16_t;
  static constexpr unsigned code_bits = 0;  // not a bit field
  static constexpr unsigned codes_per_word = 10;
  static constexpr size_t words_for(size_t n) { return (n + 9) / 10; }
  static constexpr word_t pack_word(const uint8_t* trits) {
    uint32_t v = 0;
    for (int i = 0; i < 10; ++i) v = v * 3 + trits[i];
    // ceil(v * 65536 / 59049); v < 59049 so v * 65536 < 2^32.
    return static_cast<word_t>((static_cast<uint32_t>(v) * 65536u + 59048u) / 59049u);
  }
  static constexpr size_t pack(const uint8_t* codes, size_t n, uint8_t pad, word_t* out) {
    const size_t nw = words_for(n);
    for (size_t w = 0; w < nw; ++w) {
      uint8_t t[10] = {};
      for (int j = 0; j < 10; ++j) {
        const size_t i = w * 10 + j;
        t[j] = i < n ? codes[i] : pad;
      }
      out[w] = pack_word(t);
    }
    return nw;
  }
  // Decoding by repeated multiplication by 3 (x + 2x): the integer part is the next trit.
  static constexpr uint8_t code_at(const word_t* words, size_t i) {
    uint32_t x = words[i / 10];
    uint8_t trit = 0;
    for (size_t j = 0; j <= i % 10; ++j) {
      x = x + (x << 1);
      trit = static_cast<uint8_t>(x >> 16);
      x &= 0xFFFFu;
    }
    return trit;
  }
};

// ---- the schemes -----------------------------------------------------------------------------
// encode(v): v is the already scaled weight (see ScaleRule). decode(c): the integer the kernels
// multiply by. value(c): the float weight in scaled units; w_q = value(c) / k in training.
// int_per_value = decode(c) / value(c) (a power of two, except NF4 where it is the level scale).

struct Binary : BitPacking<1> {
  static constexpr SchemeId id = SchemeId::Binary;
  static constexpr DenseFamily family = DenseFamily::PairBits;
  static constexpr Multiples multiples = Multiples::Constants;
  static constexpr const char* name = "Binary";
  static constexpr const char* type_name = "Binary";  // C++ name, for generated headers
  static constexpr ScaleRule scale_rule = ScaleRule::MeanCentered;
  static constexpr float clip_numerator = 1.0f;
  static constexpr float bits_per_weight = 1.0f;
  static constexpr bool has_zero = false;
  static constexpr uint8_t pad_code = 0;
  static constexpr int32_t max_abs = 1;
  static constexpr uint8_t encode(float v) { return v >= 0.0f ? 1 : 0; }
  static constexpr int32_t decode(uint8_t c) { return c ? 1 : -1; }
  static constexpr float value(uint8_t c) { return c ? 1.0f : -1.0f; }
};

struct Ternary : TritPacking {
  static constexpr SchemeId id = SchemeId::Ternary;
  static constexpr DenseFamily family = DenseFamily::Trits;
  static constexpr Multiples multiples = Multiples::Constants;
  static constexpr const char* name = "Ternary";
  static constexpr const char* type_name = "Ternary";  // C++ name, for generated headers
  static constexpr ScaleRule scale_rule = ScaleRule::InvMeanAbs;
  static constexpr float clip_numerator = 1.0f;
  static constexpr float bits_per_weight = 1.6f;
  static constexpr bool has_zero = true;
  static constexpr uint8_t pad_code = 2;  // trit 2 = zero weight
  static constexpr int32_t max_abs = 1;
  // trit mapping of SPEC §5: +1 -> 0, -1 -> 1, 0 -> 2
  static constexpr uint8_t encode(float v) {
    const int32_t q = detail::clamp(detail::round_half_even(v), -1, 1);
    return q > 0 ? 0 : (q < 0 ? 1 : 2);
  }
  static constexpr int32_t decode(uint8_t c) { return c == 0 ? 1 : (c == 1 ? -1 : 0); }
  static constexpr float value(uint8_t c) { return static_cast<float>(decode(c)); }
};

// Symmetric schemes without zero: code = [sign | magnitude], value = ±(mag + 0.5).
template <unsigned Bits>
struct SymmetricCodes : BitPacking<Bits> {
  static constexpr int32_t half_levels = 1 << (Bits - 1);  // 2 for 2bit, 8 for 4bit
  static constexpr bool has_zero = false;
  static constexpr uint8_t pad_code = 0;
  static constexpr int32_t max_abs = 2 * half_levels - 1;
  static constexpr uint8_t encode(float v) {
    const int32_t q = detail::clamp(detail::round_half_even(v - 0.5f), -half_levels, half_levels - 1);
    return static_cast<uint8_t>(q >= 0 ? q : (half_levels | (-q - 1)));
  }
  static constexpr int32_t decode(uint8_t c) {
    const int32_t odd = 2 * (c & (half_levels - 1)) + 1;
    return (c & half_levels) ? -odd : odd;
  }
  static constexpr float value(uint8_t c) { return 0.5f * static_cast<float>(decode(c)); }
};

struct Sym2 : SymmetricCodes<2> {
  static constexpr SchemeId id = SchemeId::Sym2;
  static constexpr DenseFamily family = DenseFamily::PairBits;
  static constexpr Multiples multiples = Multiples::OddMultiples;
  static constexpr const char* name = "2bitsym";
  static constexpr const char* type_name = "Sym2";  // C++ name, for generated headers
  static constexpr ScaleRule scale_rule = ScaleRule::Clip;
  static constexpr float clip_numerator = 2.0f;
  static constexpr float bits_per_weight = 2.0f;
};

struct Sym4 : SymmetricCodes<4> {
  static constexpr SchemeId id = SchemeId::Sym4;
  static constexpr DenseFamily family = DenseFamily::Nibble;
  static constexpr Multiples multiples = Multiples::OddMultiples;
  static constexpr const char* name = "4bitsym";
  static constexpr const char* type_name = "Sym4";  // C++ name, for generated headers
  static constexpr ScaleRule scale_rule = ScaleRule::Clip;
  static constexpr float clip_numerator = 8.0f;
  static constexpr float bits_per_weight = 4.0f;
  // value = plane_scale * u - plane_bias with u = (value + 15) / 2 in 0..15: the bit-plane
  // kernels' offset-binary code (kernels/dense_planes.hpp)
  static constexpr int32_t plane_scale = 2, plane_bias = 15;
};

// Two's complement integers.
template <unsigned Bits>
struct TwosComplementCodes : BitPacking<Bits> {
  static constexpr int32_t lo = -(1 << (Bits - 1)), hi = (1 << (Bits - 1)) - 1;
  static constexpr bool has_zero = true;
  static constexpr uint8_t pad_code = 0;
  static constexpr int32_t max_abs = -lo;
  static constexpr uint8_t encode(float v) {
    return static_cast<uint8_t>(detail::clamp(detail::round_half_even(v), lo, hi) & ((1 << Bits) - 1));
  }
  static constexpr int32_t decode(uint8_t c) { return detail::sign_extend(c, Bits); }
  static constexpr float value(uint8_t c) { return static_cast<float>(decode(c)); }
};

struct Int4 : TwosComplementCodes<4> {
  static constexpr SchemeId id = SchemeId::Int4;
  static constexpr DenseFamily family = DenseFamily::Nibble;
  static constexpr Multiples multiples = Multiples::Integers;
  static constexpr const char* name = "4bit";
  static constexpr const char* type_name = "Int4";  // C++ name, for generated headers
  static constexpr ScaleRule scale_rule = ScaleRule::Clip;
  static constexpr float clip_numerator = 8.0f;
  static constexpr float bits_per_weight = 4.0f;
  static constexpr int32_t plane_scale = 1, plane_bias = 8;  // value = u - 8 (dense_planes.hpp)
};

struct Int8 : TwosComplementCodes<8> {
  static constexpr SchemeId id = SchemeId::Int8;
  static constexpr DenseFamily family = DenseFamily::Bytes;
  static constexpr Multiples multiples = Multiples::Integers;
  static constexpr const char* name = "8bit";
  static constexpr const char* type_name = "Int8";  // C++ name, for generated headers
  static constexpr ScaleRule scale_rule = ScaleRule::Clip;
  static constexpr float clip_numerator = 128.0f;
  static constexpr float bits_per_weight = 8.0f;
};

// FP1.3.0: [sign | exponent(3)], value ±2^e. Exactly-zero weights encode as +1 (no zero code).
struct FP130 : BitPacking<4> {
  static constexpr SchemeId id = SchemeId::FP130;
  static constexpr DenseFamily family = DenseFamily::Nibble;
  static constexpr Multiples multiples = Multiples::PowersOfTwo;
  static constexpr const char* name = "FP130";
  static constexpr const char* type_name = "FP130";  // C++ name, for generated headers
  static constexpr ScaleRule scale_rule = ScaleRule::Clip;
  static constexpr float clip_numerator = 128.0f;
  static constexpr float bits_per_weight = 4.0f;
  static constexpr bool has_zero = false;
  static constexpr uint8_t pad_code = 0;
  static constexpr int32_t max_abs = 128;
  // e = clamp(floor(log2|v|), 0, 7) without <cmath>: count the powers of two below |v|.
  static constexpr uint8_t encode(float v) {
    const float a = v < 0.0f ? -v : v;
    uint8_t e = 0;
    float p = 2.0f;
    while (e < 7 && a >= p) {
      ++e;
      p *= 2.0f;
    }
    return static_cast<uint8_t>((v < 0.0f ? 8 : 0) | e);
  }
  static constexpr int32_t decode(uint8_t c) {
    const int32_t m = static_cast<int32_t>(1) << (c & 7);
    return (c & 8) ? -m : m;
  }
  static constexpr float value(uint8_t c) { return static_cast<float>(decode(c)); }
};

// NF4 (QLoRA): code = index of the nearest level. At inference each level is the integer
// round(level * 256): 9-bit resolution keeps every level within 0.5/256 = 0.002 of its float
// value (under 2.5 % of the smallest gap between levels) while |acc| <= n*127*256 fits int32
// for n < 66,000. Kernels multiply by these constants with shift-and-add only.
struct NF4 : BitPacking<4> {
  static constexpr SchemeId id = SchemeId::NF4;
  static constexpr DenseFamily family = DenseFamily::Nibble;
  static constexpr Multiples multiples = Multiples::Constants;
  static constexpr const char* name = "NF4";
  static constexpr const char* type_name = "NF4";  // C++ name, for generated headers
  static constexpr ScaleRule scale_rule = ScaleRule::Clip;
  static constexpr float clip_numerator = 1.0f;
  static constexpr float bits_per_weight = 4.0f;
  static constexpr bool has_zero = true;
  static constexpr uint8_t pad_code = 7;  // level 0.0
  static constexpr int32_t level_scale = 256;
  static constexpr int32_t max_abs = 256;
  static constexpr float levels[16] = {-1.0f,    -0.6962f, -0.5251f, -0.3949f, -0.2844f, -0.1848f,
                                       -0.0911f, 0.0f,     0.0796f,  0.1609f,  0.2461f,  0.3379f,
                                       0.4407f,  0.5626f,  0.723f,   1.0f};
  static constexpr int32_t int_levels[16] = {-256, -178, -134, -101, -73, -47, -23, 0,
                                             20,   41,   63,   87,   113,  144, 185, 256};
  // Nearest level; a value exactly on a midpoint goes to the upper level.
  static constexpr uint8_t encode(float v) {
    uint8_t c = 0;
    while (c < 15 && v >= 0.5f * (levels[c] + levels[c + 1])) ++c;
    return c;
  }
  static constexpr int32_t decode(uint8_t c) { return int_levels[c & 15]; }
  static constexpr float value(uint8_t c) { return levels[c & 15]; }
};

// Compile-time check that the integer levels are the rounded float levels.
namespace detail {
constexpr bool nf4_levels_consistent() {
  for (int c = 0; c < 16; ++c)
    if (NF4::int_levels[c] != round_half_even(NF4::levels[c] * 256.0f)) return false;
  return true;
}
static_assert(nf4_levels_consistent(), "NF4 integer levels must be round(level*256)");
}  // namespace detail

// Pack a row of codes (SPEC §5 interchange layout). Returns the number of words written.
template <class S>
constexpr size_t pack_row(const uint8_t* codes, size_t n, typename S::word_t* out) {
  return S::pack(codes, n, S::pad_code, out);
}
template <class S>
constexpr void unpack_row(const typename S::word_t* words, size_t n, uint8_t* codes) {
  for (size_t i = 0; i < n; ++i) codes[i] = S::code_at(words, i);
}
template <class S>
constexpr size_t row_words(size_t n) { return S::words_for(n); }

// Calls f.template operator()<S>() -- i.e. f(S{}) -- for the scheme with the given id.
// Returns false for an unknown id. This is the only switch over scheme ids in the engine: the
// kernels dispatch on the traits' `family` and `multiples` members.
template <class F>
constexpr bool visit_scheme(SchemeId id, F&& f) {
  switch (id) {
    case SchemeId::Binary: f(Binary{}); return true;
    case SchemeId::Ternary: f(Ternary{}); return true;
    case SchemeId::Sym2: f(Sym2{}); return true;
    case SchemeId::Sym4: f(Sym4{}); return true;
    case SchemeId::Int4: f(Int4{}); return true;
    case SchemeId::Int8: f(Int8{}); return true;
    case SchemeId::FP130: f(FP130{}); return true;
    case SchemeId::NF4: f(NF4{}); return true;
  }
  return false;
}

// Scheme name as used in trainingparameters.yaml ("4bitsym", ...) -> id. Returns false if unknown.
constexpr bool scheme_from_name(const char* name, SchemeId* out) {
  for (int i = 0; i < kNumSchemes; ++i) {
    const char* cand = "";
    visit_scheme(static_cast<SchemeId>(i), [&](auto s) { cand = decltype(s)::name; });
    const char* a = name;
    const char* b = cand;
    while (*a && *a == *b) ++a, ++b;
    if (*a == 0 && *b == 0) {
      *out = static_cast<SchemeId>(i);
      return true;
    }
  }
  return false;
}
constexpr const char* scheme_name(SchemeId id) {
  const char* n = "?";
  visit_scheme(id, [&](auto s) { n = decltype(s)::name; });
  return n;
}

}  // namespace bitnetmcu
