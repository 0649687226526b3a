// Tests of the exporter's LibTorch-free core (library bitnetmcu_export_core): packing, model
// file round trip, statistics, shape errors and the target fit estimate.
#include <cstring>
#include <random>

#include "bitnetmcu/kernels/dense_planes.hpp"
#include "bitnetmcu/layout.hpp"
#include "bitnetmcu/model_file.hpp"
#include "random_model.hpp"
#include "training/exporter/exporter.hpp"

#include <catch2/catch.hpp>

using namespace bitnetmcu;
using namespace bitnetmcu::exporter;
using namespace bitnetmcu::exporter::testing;

TEST_CASE("packing: sizes, rowsums and the model file round trip", "[export]") {
  std::mt19937 rng(11);
  const PackedModel m = pack_model(random_fc(SchemeId::Ternary, {256, 24, 16, 10}, rng), 4);
  REQUIRE(m.layers.size() == 3);
  CHECK(m.layers[0].rowsum.size() == 24);
  CHECK(m.layers[1].rowsum.empty());
  CHECK(m.layers[0].words16.size() == dense_weight_words<Ternary>(256, 24));
  CHECK(m.num_classes == 10);
  const size_t words =
      dense_weight_words<Ternary>(256, 24) + dense_weight_words<Ternary>(24, 16) + dense_weight_words<Ternary>(16, 10);
  // uint16 trit words + fc1 rowsums, stored as int16 (Ternary sums of 256 inputs fit)
  CHECK(m.layers[0].rowsum_element_bytes() == 2);
  CHECK(m.weight_bytes == 2 * words + 2 * 24);
  const auto bytes = model_file_bytes(m);
  std::vector<uint32_t> aligned((bytes.size() + 3) / 4);
  std::memcpy(aligned.data(), bytes.data(), bytes.size());
  LayerDesc layers[kModelFileMaxLayers];
  ModelFileInfo info{};
  REQUIRE(parse_model_file(reinterpret_cast<const uint8_t*>(aligned.data()), bytes.size(), layers, kModelFileMaxLayers,
                           &info) == ModelFileError::Ok);
  CHECK(info.n_layers == 3);
  CHECK(info.num_classes == 10);
  const std::string header = model_header_text(m, HeaderMeta{"t", "test", "MNIST", "x.pt", "00000000", "a: 1\n"});
  CHECK(header.find("inline constexpr uint16_t fc1_weights[]") != std::string::npos);
  CHECK(header.find("bitnetmcu::Dense<bitnetmcu::Ternary, 256, 24, fc1_weights, fc1_rowsum>") != std::string::npos);
  // Read back from the model file, the model has the same sizes (what the fit-estimate test uses).
  const PackedModel back = packed_model_from_layers(layers, info.n_layers, info.input_size);
  CHECK(back.weight_bytes == m.weight_bytes);
  CHECK(back.scratch_bytes == m.scratch_bytes);
  CHECK(back.num_classes == m.num_classes);
  CHECK(check_target(back, kCh32v003).flash_needed == check_target(m, kCh32v003).flash_needed);
}

TEST_CASE("statistics: histogram, entropy and code-space use", "[export]") {
  QuantizedTensor t;
  t.name = "fc1";
  t.scheme = SchemeId::Sym2;
  t.shape = {2, 4};
  t.codes = {0, 0, 0, 0, 1, 1, 2, 2};  // +1 x4, +3 x2, -1 x2
  compute_stats(t);
  CHECK(t.stats.code_space == 4);
  CHECK(t.stats.codes_used == 3);
  CHECK((t.stats.histogram == std::vector<uint64_t>{4, 2, 2, 0}));
  CHECK((t.stats.code_values == std::vector<int32_t>{1, 3, -1, -3}));
  CHECK(t.stats.entropy_bits == Approx(1.5));
  CHECK(t.weight_bits == 16);
  CHECK(t.packed_bytes == 4 * dense_weight_words<Sym2>(4, 2));  // compact tail stream: 1 word
}

TEST_CASE("unpackable shapes are rejected with the layer and shape", "[export][errors]") {
  std::mt19937 rng(5);
  SECTION("layers that do not chain") {
    auto t = random_fc(SchemeId::Sym4, {256, 16, 16, 10}, rng);
    t[1] = random_tensor("fc2", SchemeId::Sym4, {16, 15}, rng);
    CHECK_THROWS_WITH(pack_model(t, 4), Catch::Contains("fc2 takes 15 inputs") && Catch::Contains("cannot be chained"));
  }
  SECTION("first layer not 256 inputs") {
    auto t = random_fc(SchemeId::Sym4, {100, 16, 16, 10}, rng);
    CHECK_THROWS_WITH(pack_model(t, 4), Catch::Contains("the image has 256"));
  }
  SECTION("a dense layer that is not a matrix") {
    auto t = random_fc(SchemeId::Sym4, {256, 16, 16, 10}, rng);
    t[1].shape = {16, 4, 4};
    CHECK_THROWS_WITH(pack_model(t, 4), Catch::Contains("fc2: weight shape [16, 4, 4]"));
  }
  SECTION("a layer that overflows the int32 accumulator") {
    // 65536 inputs x 128 x 256 (NF4's largest level) reaches 2^31.
    std::vector<QuantizedTensor> t{random_tensor("fc1", SchemeId::NF4, {10, 256}, rng),
                                   random_tensor("fc2", SchemeId::NF4, {10, 65536}, rng),
                                   random_tensor("fcl", SchemeId::NF4, {10, 10}, rng)};
    CHECK_THROWS_WITH(pack_model(t, 4), Catch::Contains("overflow"));
  }
  SECTION("conv layers of different schemes or channels") {
    std::vector<QuantizedTensor> t{random_tensor("conv1", SchemeId::Int8, {4, 1, 3, 3}, rng),
                                   random_tensor("conv2", SchemeId::Int4, {4, 1, 3, 3}, rng),
                                   random_tensor("conv3", SchemeId::Int8, {4, 1, 3, 3}, rng)};
    for (auto& fc : random_fc(SchemeId::Sym4, {16, 8, 8, 10}, rng)) t.push_back(fc);
    CHECK_THROWS_WITH(pack_model(t, 4), Catch::Contains("one scheme for conv1..3"));
    t[1] = random_tensor("conv2", SchemeId::Int8, {5, 1, 3, 3}, rng);
    CHECK_THROWS_WITH(pack_model(t, 4), Catch::Contains("conv2: weight shape [5, 1, 3, 3]"));
  }
  SECTION("a missing classifier") {
    auto t = random_fc(SchemeId::Sym4, {256, 16, 16, 10}, rng);
    t.pop_back();
    CHECK_THROWS_WITH(pack_model(t, 4), Catch::Contains("no layer 'fcl'"));
  }
}

// The bit-plane kernel (DenseKernel::Planes): picked for a large enough 4bitsym/4bit model that
// still fits, and then the estimate counts its layout (whole words per 8 outputs), scratch and stack.
TEST_CASE("uses_plane_kernels picks the bit-plane kernel where it pays and fits", "[export]") {
  std::mt19937 rng(11);
  const PackedModel fc = pack_model(random_fc(SchemeId::Sym4, {256, 48, 48, 10}, rng), 4);
  CHECK(uses_plane_kernels(fc));
  const TargetFit f = check_target(fc, kCh32v003);
  CHECK(f.plane_kernels);
  CHECK_THAT(f.describe(), Catch::Contains("bit-plane dense kernels"));
  // fc1 256x48 (6 words per column: + 3 words of padding), fc2 48x48, fcl 48x10 (2 words per column)
  const size_t plane_bytes = 4 * (plane_column_words(256, 48) + plane_column_words(48, 48) + plane_column_words(48, 10));
  size_t packed_bytes = 0;
  for (const auto& l : fc.layers) packed_bytes += 4 * l.words32.size();
  CHECK(f.weight_bytes == fc.weight_bytes - packed_bytes + plane_bytes);
  CHECK(f.scratch_bytes == fc.scratch_bytes + 4 * (plane_scratch_words(48) + plane_scratch_words(10)));
  CHECK(uses_plane_kernels(pack_model(random_fc(SchemeId::Int4, {256, 48, 48, 10}, rng), 4)));
  // not for schemes without plane traits, small layers, or a model that would no longer fit
  CHECK_FALSE(uses_plane_kernels(pack_model(random_fc(SchemeId::FP130, {256, 48, 48, 10}, rng), 4)));
  CHECK_FALSE(check_target(pack_model(random_fc(SchemeId::FP130, {256, 48, 48, 10}, rng), 4), kCh32v003).plane_kernels);
  CHECK_FALSE(uses_plane_kernels(pack_model(random_fc(SchemeId::Sym4, {30, 32, 16, 2}, rng), 4, 30)));
  // fits on the table kernel (16,188 of 16,384 bytes), not with the plane layout and code
  const PackedModel tight = pack_model(random_fc(SchemeId::Sym4, {256, 64, 64, 72, 10}, rng), 4);
  CHECK_FALSE(uses_plane_kernels(tight));
  const TargetFit t = check_target(tight, kCh32v003);
  CHECK((t.fits && !t.plane_kernels && t.flash_needed <= kCh32v003.flash_bytes));
}

TEST_CASE("target fit check reports flash and RAM numbers", "[export][errors]") {
  std::mt19937 rng(9);
  const PackedModel small = pack_model(random_fc(SchemeId::Sym2, {256, 16, 16, 10}, rng), 4);
  const TargetFit ok = check_target(small, *find_target("ch32v003"));
  CHECK(ok.fits);
  const PackedModel big = pack_model(random_fc(SchemeId::Int8, {256, 64, 64, 10}, rng), 4);
  const TargetFit over = check_target(big, *find_target("ch32v003"));
  CHECK_FALSE(over.fits);
  CHECK(over.flash_needed > kCh32v003.flash_bytes);
  CHECK_THAT(over.describe(), Catch::Contains("flash " + std::to_string(over.flash_needed) + " / " + std::to_string(kCh32v003.flash_bytes)) &&
                                  Catch::Contains("OVER"));
  PackedModel wide = small;
  wide.scratch_bytes = 4000;
  CHECK_FALSE(check_target(wide, *find_target("ch32v003")).fits);
  CHECK(check_target(wide, *find_target("ch32v002")).ram_budget == kCh32v002.ram_bytes);
  CHECK(find_target("esp32") == nullptr);
  // Within the estimate's error of the budget: accepted with a warning, the firmware link decides.
  PackedModel edge = small;
  edge.weight_bytes = kCh32v003.flash_bytes - ok.code_bytes_estimate + kFitMargin / 2;
  const TargetFit near = check_target(edge, *find_target("ch32v003"));
  CHECK((near.fits && near.borderline));
  CHECK_THAT(near.describe(), Catch::Contains("the firmware link decides"));
  edge.weight_bytes += kFitMargin;
  CHECK_FALSE(check_target(edge, *find_target("ch32v003")).fits);
  // Embedded test samples count: input bytes and a label each.
  CHECK(check_target(small, kCh32v003, 3).code_bytes_estimate == ok.code_bytes_estimate + 2 * (256 + 1));
}

