// Checksum-valid but hostile model files: values the typed model rejects at compile time must
// be rejected at load time too (found by a bad-input probe, issue 13). Each file is crafted by
// editing a valid one and recomputing its CRC, as an attacker would.
#include <catch2/catch.hpp>

#include <cstring>
#include <string>
#include <vector>

#include "bitnetmcu/bitnetmcu.hpp"

using namespace bitnetmcu;

namespace {

struct File {
  std::vector<uint32_t> words;  // 4-byte aligned storage
  size_t size = 0;
  uint8_t* bytes() { return reinterpret_cast<uint8_t*>(words.data()); }
  void reseal() {  // recompute the CRC after an edit
    const uint32_t crc = crc32(bytes(), size - 4);
    for (int i = 0; i < 4; ++i) bytes()[size - 4 + i] = static_cast<uint8_t>(crc >> (8 * i));
  }
  ModelFileError parse(ModelFileInfo* info = nullptr) {
    LayerDesc layers[kModelFileMaxLayers];
    ModelFileInfo local{};
    return parse_model_file(bytes(), size, layers, kModelFileMaxLayers, info ? info : &local);
  }
};

File write(const LayerDesc* layers, uint32_t n) {
  File f;
  f.size = model_file_size(layers, n);
  f.words.resize((f.size + 3) / 4);
  REQUIRE(write_model_file(layers, n, f.bytes()) == f.size);
  return f;
}

// The text says what was wrong; checked by words so the test also compiles against a parser
// without the specific error codes.
void require_rejected(File& f, const char* words_in_text) {
  const ModelFileError err = f.parse();
  REQUIRE(err != ModelFileError::Ok);
  CHECK_THAT(std::string(model_file_error_text(err)), Catch::Contains(words_in_text));
}

// A dense layer of scheme S with random codes and (optionally) correct row sums.
template <class S>
struct DenseLayer {
  std::vector<typename S::word_t> w;
  std::vector<int32_t> rowsum;
  LayerDesc desc;
  DenseLayer(uint32_t n_in, uint32_t n_out, bool with_rowsum, uint32_t seed = 1) : w(dense_weight_words<S>(n_in, n_out)) {
    std::vector<uint8_t> codes(size_t{n_in} * n_out), gather(n_out);
    uint32_t x = seed;
    for (auto& c : codes) c = static_cast<uint8_t>((x = x * 1664525u + 1013904223u) >> 24) % (S::code_bits ? 1u << S::code_bits : 3u);
    pack_columns<S>(codes.data(), n_out, n_in, gather.data(), w.data());
    if (with_rowsum) {
      rowsum.assign(n_out, 0);
      for (uint32_t o = 0; o < n_out; ++o)
        for (uint32_t i = 0; i < n_in; ++i) rowsum[o] += S::decode(codes[size_t{o} * n_in + i]);
    }
    desc = {LayerKind::Dense, S::id, 0, n_in, n_out, w.data(), with_rowsum ? rowsum.data() : nullptr};
  }
};

constexpr size_t kLayer0 = 24;  // offset of the first layer header
}  // namespace

TEST_CASE("model file: a CNN of input side 8..11 has no outputs and is rejected") {
  std::vector<uint8_t> w(27 * 2, 1);
  for (uint32_t side = 8; side <= 12; ++side) {
    CAPTURE(side);
    const LayerDesc cnn{LayerKind::Cnn, SchemeId::Int8, 8, side, 2, w.data(), nullptr};
    File f = write(&cnn, 1);
    if (side < 12) {
      require_rejected(f, "without outputs");
    } else {
      ModelFileInfo info{};
      REQUIRE(f.parse(&info) == ModelFileError::Ok);
      CHECK(info.num_classes == 2);
    }
  }
}

TEST_CASE("model file: unused flag bits and a dense shift are rejected") {
  DenseLayer<Sym4> l0(64, 12, true);
  DenseLayer<Int8> l1(12, 10, false);
  const LayerDesc layers[2] = {l0.desc, l1.desc};
  File f = write(layers, 2);
  REQUIRE(f.parse() == ModelFileError::Ok);
  const size_t layer1 = kLayer0 + 16 + layer_weight_bytes(l0.desc) + 4 * 12;
  REQUIRE(f.bytes()[layer1 + 4] == 12);  // n_in of layer 1: the offset is right

  SECTION("flag bit 1") {
    f.bytes()[kLayer0 + 3] = 0x03;
    f.reseal();
    require_rejected(f, "flag");
  }
  SECTION("flag bit 7 on a layer without row sums") {
    f.bytes()[layer1 + 3] = 0x80;
    f.reseal();
    require_rejected(f, "flag");
  }
  SECTION("dense shift") {
    f.bytes()[layer1 + 2] = 5;
    f.reseal();
    require_rejected(f, "shift");
  }
  SECTION("the error names the layer") {
    f.bytes()[layer1 + 2] = 5;
    f.reseal();
    ModelFileInfo info{};
    REQUIRE(f.parse(&info) != ModelFileError::Ok);
    CHECK(info.error_layer == 1);
  }
}

TEST_CASE("model file: row sums that disagree with the weights are rejected (int32 overflow in add_multiple)") {
  DenseLayer<Sym4> l0(256, 10, true);
  File f = write(&l0.desc, 1);
  REQUIRE(f.parse() == ModelFileError::Ok);
  int32_t* rowsum = reinterpret_cast<int32_t*>(f.bytes() + kLayer0 + 16 + layer_weight_bytes(l0.desc));
  REQUIRE(rowsum[3] == l0.rowsum[3]);
  SECTION("extreme: x[0] * rowsum overflows int32") {
    rowsum[3] = 0x7FFFFF00;
    f.reseal();
    require_rejected(f, "row sums");
  }
  SECTION("off by one") {
    rowsum[9] += 1;
    f.reseal();
    require_rejected(f, "row sums");
  }
}

TEST_CASE("model file: layers whose accumulators could overflow int32 are rejected (same bound as the typed model)") {
  SECTION("NF4 with the background offset: 40,000 inputs * 255 * 256 > 2^31") {
    static_assert(!fits_accumulator(dense_acc_bound(40000, NF4::max_abs, true)));
    static_assert(fits_accumulator(dense_acc_bound(40000, NF4::max_abs, false)));
    DenseLayer<NF4> with(40000, 1, true);
    File f = write(&with.desc, 1);
    require_rejected(f, "overflow");
    DenseLayer<NF4> without(40000, 1, false);
    File g = write(&without.desc, 1);
    CHECK(g.parse() == ModelFileError::Ok);
  }
  SECTION("CNN shift too small for its three stages") {
    static_assert(!fits_accumulator(cnn_acc_bound(0, Int8::max_abs)));
    std::vector<uint8_t> w(27, 0x7F);
    LayerDesc cnn{LayerKind::Cnn, SchemeId::Int8, 0, 16, 1, w.data(), nullptr};
    File f = write(&cnn, 1);
    require_rejected(f, "overflow");
    cnn.shift = 8;
    static_assert(fits_accumulator(cnn_acc_bound(8, Int8::max_abs)));
    File g = write(&cnn, 1);
    CHECK(g.parse() == ModelFileError::Ok);
  }
}
