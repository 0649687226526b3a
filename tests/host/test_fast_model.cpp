// FastModel (every instruction set this CPU runs) is bit-exact with the engine's run_layers:
// same class and same last-layer accumulators, on random models of every scheme, odd sizes,
// MNIST-like and uniform random images, and CNN planes that overflow int16 (engine fallback).
#include <catch2/catch.hpp>

#include <bitnetmcu/bitnetmcu.hpp>

#include <random>
#include <vector>

#include "fast_model.hpp"

using namespace bitnetmcu;
using host::FastModel;
using host::Isa;

namespace {

// A model built from random codes; owns the storage its LayerDescs point into.
struct RandomModel {
  std::vector<LayerDesc> layers;
  std::vector<std::vector<uint32_t>> storage;

  template <class S>
  void add_dense(std::mt19937& rng, uint32_t n_in, uint32_t n_out, int rowsum_kind) {
    const uint32_t ncodes = S::code_bits ? (1u << S::code_bits) : 3u;
    std::vector<uint8_t> codes(size_t(n_in) * n_out), scratch(n_out);
    for (auto& c : codes) c = static_cast<uint8_t>(rng() % ncodes);
    const size_t bytes = dense_weight_words<S>(n_in, n_out) * sizeof(typename S::word_t);
    storage.emplace_back((bytes + 3) / 4);
    pack_columns<S>(codes.data(), n_out, n_in, scratch.data(), reinterpret_cast<typename S::word_t*>(storage.back().data()));
    LayerDesc d{LayerKind::Dense, S::id, 0, n_in, n_out, storage.back().data(), nullptr};
    if (rowsum_kind) {  // 1: the true row sums; 2: arbitrary ones (the engine's arithmetic must still match)
      storage.emplace_back(n_out);
      for (uint32_t o = 0; o < n_out; ++o) {
        int32_t sum = 0;
        for (uint32_t i = 0; i < n_in; ++i) sum += S::decode(codes[size_t(o) * n_in + i]);
        storage.back()[o] = static_cast<uint32_t>(rowsum_kind == 1 ? sum : static_cast<int32_t>(rng() % 2001) - 1000);
      }
      d.rowsum = reinterpret_cast<const int32_t*>(storage.back().data());
    }
    layers.push_back(d);
  }

  template <class S>
  void add_cnn(std::mt19937& rng, uint32_t side, uint32_t channels, uint32_t shift) {
    const uint32_t ncodes = S::id == SchemeId::Int8 ? 256u : (S::code_bits ? (1u << S::code_bits) : 3u);
    storage.emplace_back((27 * channels + 3) / 4);
    uint8_t* w = reinterpret_cast<uint8_t*>(storage.back().data());
    for (uint32_t i = 0; i < 27 * channels; ++i) w[i] = static_cast<uint8_t>(rng() % ncodes);
    layers.push_back({LayerKind::Cnn, S::id, static_cast<uint8_t>(shift), side, channels, storage.back().data(), nullptr});
  }
  uint32_t input_size() const {
    return static_cast<uint32_t>(layer_in_words(layers[0]));
  }
};

// MNIST-like (most pixels equal a background value) or uniform int8 images.
std::vector<int8_t> random_images(std::mt19937& rng, uint32_t n, uint32_t size, bool mnist_like) {
  std::vector<int8_t> x(size_t(n) * size);
  for (uint32_t k = 0; k < n; ++k) {
    const int8_t bg = static_cast<int8_t>(static_cast<int>(rng() % 256) - 128);
    for (uint32_t i = 0; i < size; ++i)
      x[size_t(k) * size + i] =
          mnist_like && rng() % 100 < 70 ? bg : static_cast<int8_t>(static_cast<int>(rng() % 256) - 128);
  }
  return x;
}

std::vector<Isa> fast_isas() {
  std::vector<Isa> r;
  for (Isa i : {Isa::Sse2, Isa::Avx2, Isa::Avx512})
    if (host::isa_available(i)) r.push_back(i);
  return r;
}

// Every image: same class and logits from FastModel(isa) and run_layers. Returns the number of
// images compared.
size_t check_equal(const RandomModel& m, const std::vector<int8_t>& images) {
  const uint32_t n_layers = static_cast<uint32_t>(m.layers.size());
  const RuntimeNeeds needs = runtime_needs(m.layers.data(), n_layers);
  std::vector<int32_t> a(needs.words_a + 1), b(needs.words_b + 1);
  const uint32_t in = m.input_size();
  const size_t n = images.size() / in;
  size_t compared = 0;
  for (Isa isa : fast_isas()) {
    FastModel fast(m.layers.data(), n_layers, isa);
    REQUIRE(fast.isa() == isa);
    const uint32_t nc = fast.num_classes();
    std::vector<int32_t> logits(n * nc);
    std::vector<int64_t> classes(n);
    fast.run_batch(images.data(), n, classes.data(), logits.data(), 1);
    for (size_t k = 0; k < n; ++k) {
      const int32_t* last = nullptr;
      const uint32_t c = run_layers(m.layers.data(), n_layers, images.data() + k * in, a.data(), b.data(), &last);
      INFO("isa " << host::isa_name(isa) << ", image " << k);
      REQUIRE(classes[k] == c);
      REQUIRE(std::vector<int32_t>(last, last + nc) == std::vector<int32_t>(&logits[k * nc], &logits[k * nc] + nc));
      ++compared;
    }
  }
  return compared;
}

template <class S>
void check_fc_scheme(uint32_t seed) {
  std::mt19937 rng(seed);
  for (int trial = 0; trial < 6; ++trial) {
    RandomModel m;
    const uint32_t n0 = 1 + rng() % 300, n1 = 1 + rng() % 70, n2 = 1 + rng() % 40;
    m.add_dense<S>(rng, n0, n1, trial % 3);
    m.add_dense<S>(rng, n1, n2, 0);
    m.add_dense<S>(rng, n2, 10, 0);
    INFO(S::name << " " << n0 << "/" << n1 << "/" << n2 << "/10, rowsum kind " << trial % 3);
    const size_t done = check_equal(m, random_images(rng, 40, n0, trial % 2 == 0));
    CHECK(done == 40 * fast_isas().size());
  }
}

}  // namespace

TEST_CASE("fast dense path equals run_layers for every scheme and odd sizes", "[host]") {
  REQUIRE(!fast_isas().empty() == host::isa_available(Isa::Sse2));
  check_fc_scheme<Binary>(1);
  check_fc_scheme<Ternary>(2);
  check_fc_scheme<Sym2>(3);
  check_fc_scheme<Sym4>(4);
  check_fc_scheme<Int4>(5);
  check_fc_scheme<Int8>(6);
  check_fc_scheme<FP130>(7);
  check_fc_scheme<NF4>(8);
}

TEST_CASE("fast dense path on a mixed model with extreme inputs", "[host]") {
  std::mt19937 rng(9);
  RandomModel m;
  m.add_dense<NF4>(rng, 257, 33, 1);  // |weight| 256, inputs - background up to 255
  m.add_dense<Int8>(rng, 33, 17, 0);
  m.add_dense<Sym4>(rng, 17, 3, 0);
  std::vector<int8_t> images = random_images(rng, 30, 257, true);
  for (uint32_t i = 0; i < 257; ++i) images[i] = static_cast<int8_t>(i % 2 ? 127 : -128);  // image 0: extremes
  images[0] = 127;
  check_equal(m, images);
}

template <class S>
void check_cnn_scheme(uint32_t seed) {
  std::mt19937 rng(seed);
  const uint32_t sides[] = {16, 12, 13, 20}, channels[] = {64, 5, 24, 17};
  for (int trial = 0; trial < 4; ++trial) {
    RandomModel m;
    const uint32_t side = sides[trial], c = channels[trial];
    // Shifts from "planes overflow int16" (fallback) to typical; int32 must not overflow.
    uint32_t shift = 2 + rng() % 6;
    while (cnn_acc_bound(shift, S::max_abs) >= 0x7FFFFFFFll) ++shift;
    m.add_cnn<S>(rng, side, c, shift);
    const uint32_t flat = c * cnn_output_side(side) * cnn_output_side(side);
    m.add_dense<Sym2>(rng, flat, 40, 0);
    m.add_dense<Sym4>(rng, 40, 10, 0);
    INFO(S::name << " CNN side " << side << ", " << c << " channels, shift " << shift);
    check_equal(m, random_images(rng, 25, side * side, trial % 2 == 0));
  }
}

TEST_CASE("fast CNN path equals run_layers (8bit, FP130, 4bitsym, Ternary convs)", "[host]") {
  check_cnn_scheme<Int8>(11);
  check_cnn_scheme<FP130>(12);
  check_cnn_scheme<Sym4>(13);
  check_cnn_scheme<Ternary>(14);
}

TEST_CASE("fast CNN path falls back to the engine when a plane exceeds int16", "[host]") {
  std::mt19937 rng(15);
  RandomModel m;
  m.add_cnn<Int8>(rng, 16, 16, 1);  // shift 1: conv1 outputs reach 9*128*128/2 > 32767
  // all conv weights +127 or -128 so that planes are large
  uint8_t* w = reinterpret_cast<uint8_t*>(m.storage.back().data());
  for (uint32_t i = 0; i < 27 * 16; ++i) w[i] = i % 7 ? 0x7F : 0x80;
  m.add_dense<Sym4>(rng, 16 * 4, 10, 0);
  check_equal(m, random_images(rng, 20, 256, false));
}

TEST_CASE("run_batch with threads equals one thread", "[host]") {
  std::mt19937 rng(16);
  RandomModel m;
  m.add_cnn<Int8>(rng, 16, 8, 6);
  m.add_dense<Sym4>(rng, 32, 10, 0);
  const auto images = random_images(rng, 1000, 256, true);
  FastModel fast(m.layers.data(), 2);
  std::vector<int32_t> l1(1000 * 10), l4(1000 * 10);
  std::vector<int64_t> c1(1000), c4(1000);
  fast.run_batch(images.data(), 1000, c1.data(), l1.data(), 1);
  fast.run_batch(images.data(), 1000, c4.data(), l4.data(), 4);
  CHECK(c1 == c4);
  CHECK(l1 == l4);
}
