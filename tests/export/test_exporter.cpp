// Exporter library tests: packing and the engine against the LibTorch emulation for every scheme,
// shape/scheme/target errors, and the error cases of whole runs on bad checkpoints.
#include <torch/torch.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>

#include <unistd.h>

#include "bitnetmcu/layout.hpp"
#include "bitnetmcu/model_file.hpp"
#include "training/checkpoint.hpp"
#include "training/config.hpp"
#include "training/models.hpp"
#include "training/exporter/emulate.hpp"
#include "training/exporter/exporter.hpp"

// After LibTorch: glog defines its own CHECK, Catch's must win.
#include <catch2/catch.hpp>

using namespace bitnetmcu;
using namespace bitnetmcu::exporter;
namespace fs = std::filesystem;

namespace {

// Random codes of a scheme for a tensor of the given shape.
QuantizedTensor random_tensor(const std::string& name, SchemeId scheme, std::vector<int64_t> shape,
                              std::mt19937& rng) {
  QuantizedTensor t;
  t.name = name;
  t.scheme = scheme;
  t.shape = shape;
  size_t n = 1;
  for (int64_t d : shape) n *= size_t(d);
  visit_scheme(scheme, [&](auto s) {
    using S = decltype(s);
    const uint32_t space = S::code_bits ? (1u << S::code_bits) : 3u;
    for (size_t i = 0; i < n; ++i) {
      const auto c = static_cast<uint8_t>(rng() % space);
      t.codes.push_back(c);
      t.ints.push_back(S::decode(c));
    }
  });
  return t;
}

std::vector<QuantizedTensor> random_fc(SchemeId scheme, std::vector<int64_t> widths, std::mt19937& rng) {
  std::vector<QuantizedTensor> v;
  const char* names[] = {"fc1", "fc2", "fc3", "fcl"};
  for (size_t l = 0; l + 1 < widths.size(); ++l) {
    const bool last = l + 2 == widths.size();
    v.push_back(random_tensor(last ? "fcl" : names[l], scheme, {widths[l + 1], widths[l]}, rng));
  }
  return v;
}

// Images shaped like MNIST after quantization: a constant background and a few strokes.
std::vector<int8_t> random_images(size_t n, std::mt19937& rng) {
  std::vector<int8_t> img(n * 256, -54);
  for (auto& v : img)
    if (rng() % 4 == 0) v = static_cast<int8_t>(static_cast<int>(rng() % 256) - 128);
  return img;
}

void expect_engine_equals_emulation(const std::vector<QuantizedTensor>& tensors, uint32_t shift) {
  std::mt19937 rng(7);
  const PackedModel m = pack_model(tensors, shift);
  const size_t n = 300;
  const auto images = random_images(n, rng);
  std::vector<uint8_t> preds;
  std::vector<int32_t> logits;
  run_engine(m, images.data(), n, preds, logits);
  const auto img = torch::from_blob(const_cast<int8_t*>(images.data()), {int64_t(n), 256}, torch::kInt8).clone();
  const Emulation e = emulate_integer_model(m.tensors, img, shift);
  const auto engine_logits =
      torch::tensor(std::vector<int64_t>(logits.begin(), logits.end())).view({int64_t(n), int64_t(m.num_classes)});
  CHECK(e.logits.equal(engine_logits));
  const auto engine_preds = torch::tensor(std::vector<int64_t>(preds.begin(), preds.end()));
  CHECK(e.predictions.equal(engine_preds));
  // Not degenerate: the hidden layers pass signal (several classes predicted).
  CHECK(std::get<0>(at::_unique(engine_preds)).numel() > 1);
}

// A temp folder of this process (ctest runs test cases in parallel processes).
// Removed when the process ends.
fs::path temp_dir() {
  struct Dir {
    fs::path path = fs::temp_directory_path() / ("bitnetmcu_export_tests_" + std::to_string(::getpid()));
    Dir() { fs::create_directories(path); }
    ~Dir() {
      std::error_code ec;
      fs::remove_all(path, ec);
    }
  };
  static const Dir dir;
  return dir.path;
}

// Writes a random-init checkpoint of `cfg` into the temp folder.
std::string write_checkpoint(const std::string& file, const train::Config& cfg) {
  train::QatModel model = train::build_model(cfg);
  train::Checkpoint ckpt;
  ckpt.config_yaml = train::config_to_yaml(cfg);
  ckpt.meta.creator = "export tests";
  ckpt.tensors = model->state_tensors();
  const std::string path = (temp_dir() / file).string();
  train::save_checkpoint_atomic(path, ckpt);
  return path;
}

train::Config small_fc(const std::string& scheme) {
  train::Config cfg;
  cfg.network_width1 = 16;
  cfg.network_width2 = 16;
  cfg.network_width3 = 0;
  cfg.QuantType = scheme;
  return cfg;
}

ExportOptions options_for(const std::string& checkpoint) {
  ExportOptions o;
  o.checkpoint_path = checkpoint;
  o.out_dir = (temp_dir() / "out").string();
  o.quiet = true;
  return o;
}

std::string export_error(const ExportOptions& o) {
  try {
    run_export(o);
  } catch (const ExportError& e) {
    return e.what();
  }
  FAIL("run_export did not fail");
  return "";
}

}  // namespace

TEST_CASE("engine equals the LibTorch emulation for every dense scheme", "[export]") {
  for (int id = 0; id < kNumSchemes; ++id) {
    const auto scheme = static_cast<SchemeId>(id);
    SECTION(scheme_name(scheme)) {
      std::mt19937 rng(id + 1);
      // Odd widths exercise padded words (10 trits, 8 nibbles, 32 bits per word).
      expect_engine_equals_emulation(random_fc(scheme, {256, 37, 21, 13, 10}, rng), 4);
    }
  }
}

TEST_CASE("engine equals the LibTorch emulation for the CNN block", "[export]") {
  for (SchemeId conv : {SchemeId::Int8, SchemeId::Int4, SchemeId::FP130, SchemeId::Ternary}) {
    SECTION(scheme_name(conv)) {
      std::mt19937 rng(3);
      const int64_t c = 6;
      std::vector<QuantizedTensor> t;
      for (const char* name : {"conv1", "conv2", "conv3"}) t.push_back(random_tensor(name, conv, {c, 1, 3, 3}, rng));
      for (auto& fc : random_fc(SchemeId::Sym4, {4 * c, 20, 12, 10}, rng)) t.push_back(fc);
      t[3].scheme = SchemeId::Sym2;  // fc1 of CNNMNIST is 2bitsym
      for (auto& c8 : t[3].codes) c8 &= 3;
      t[3].ints.clear();
      for (uint8_t code : t[3].codes) t[3].ints.push_back(Sym2::decode(code));
      // A shift that keeps activations alive for the scheme's weight range.
      const uint32_t shift = conv == SchemeId::Int8 ? 4 : conv == SchemeId::FP130 ? 5 : 1;
      expect_engine_equals_emulation(t, shift);
    }
  }
}

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

TEST_CASE("target fit check reports flash and RAM numbers", "[export][errors]") {
  std::mt19937 rng(9);
  const PackedModel small = pack_model(random_fc(SchemeId::Sym2, {256, 16, 16, 10}, rng), 4);
  const TargetFit ok = check_target(small, *find_target("ch32v003"));
  CHECK(ok.fits);
  const PackedModel big = pack_model(random_fc(SchemeId::Int8, {256, 64, 64, 10}, rng), 4);
  const TargetFit over = check_target(big, *find_target("ch32v003"));
  CHECK_FALSE(over.fits);
  CHECK(over.flash_needed > 16384);
  CHECK_THAT(over.describe(), Catch::Contains("flash " + std::to_string(over.flash_needed) + " / 16384") &&
                                  Catch::Contains("OVER"));
  PackedModel wide = small;
  wide.scratch_bytes = 4000;
  CHECK_FALSE(check_target(wide, *find_target("ch32v003")).fits);
  CHECK(check_target(wide, *find_target("ch32v002")).ram_budget == 4096);
  CHECK(find_target("esp32") == nullptr);
  // Within the estimate's error of the budget: accepted with a warning, the firmware link decides.
  PackedModel edge = small;
  edge.weight_bytes = 16384 - ok.code_bytes_estimate + kFitMargin / 2;
  const TargetFit near = check_target(edge, *find_target("ch32v003"));
  CHECK((near.fits && near.borderline));
  CHECK_THAT(near.describe(), Catch::Contains("the firmware link decides"));
  edge.weight_bytes += kFitMargin;
  CHECK_FALSE(check_target(edge, *find_target("ch32v003")).fits);
}

TEST_CASE("bad checkpoints fail with the file named", "[export][errors]") {
  const fs::path dir = temp_dir();
  SECTION("missing") {
    CHECK_THAT(export_error(options_for((dir / "no_such.pt").string())), Catch::Contains("no_such.pt"));
  }
  SECTION("foreign") {
    const std::string path = (dir / "foreign.pt").string();
    std::ofstream(path) << "PK\x03\x04 this is a zip file, not a bitnetmcu checkpoint";
    CHECK_THAT(export_error(options_for(path)), Catch::Contains("foreign.pt"));
  }
  SECTION("truncated") {
    const std::string good = write_checkpoint("good.pt", small_fc("4bitsym"));
    std::ifstream in(good, std::ios::binary);
    std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const std::string path = (dir / "truncated.pt").string();
    std::ofstream(path, std::ios::binary).write(bytes.data(), std::streamsize(bytes.size() / 2));
    CHECK_THAT(export_error(options_for(path)), Catch::Contains("truncated.pt"));
  }
}

TEST_CASE("unknown or float schemes and unpackable checkpoints fail clearly", "[export][errors]") {
  SECTION("unknown scheme in the stored config") {
    train::Config cfg = small_fc("4bitsym");
    const std::string good = write_checkpoint("scheme.pt", cfg);
    train::Checkpoint ckpt = train::load_checkpoint(good);
    const std::string key = "QuantType: \"4bitsym\"";
    const auto at = ckpt.config_yaml.find(key);
    REQUIRE(at != std::string::npos);
    ckpt.config_yaml.replace(at, key.size(), "QuantType: \"5bitsym\"");
    const std::string path = good + ".unknown.pt";
    train::save_checkpoint_atomic(path, ckpt);
    CHECK_THAT(export_error(options_for(path)), Catch::Contains("5bitsym"));
  }
  SECTION("float layers") {
    CHECK_THAT(export_error(options_for(write_checkpoint("float.pt", small_fc("None")))),
               Catch::Contains("fc1 is not quantized"));
  }
  SECTION("CNN convs of different schemes") {
    train::Config cfg = small_fc("4bitsym");
    cfg.model = "CNNMNIST";
    cfg.cnn_width = 2;
    cfg.QuantType_conv1 = "4bit";
    CHECK_THAT(export_error(options_for(write_checkpoint("cnn_mixed.pt", cfg))),
               Catch::Contains("one scheme for conv1..3"));
  }
  SECTION("over-budget target, before any verification") {
    train::Config cfg = small_fc("8bit");
    cfg.network_width1 = 64;
    cfg.network_width2 = 64;
    ExportOptions o = options_for(write_checkpoint("big.pt", cfg));
    o.target = "ch32v003";
    CHECK_THAT(export_error(o), Catch::Contains("does not fit ch32v003: flash") && Catch::Contains("/ 16384"));
    o.target = "ch32v009";
    CHECK_THAT(export_error(o), Catch::Contains("--target 'ch32v009' is unknown"));
  }
  SECTION("a name that is no C++ identifier") {
    ExportOptions o = options_for("whatever.pt");
    o.name = "3-layers";
    CHECK_THAT(export_error(o), Catch::Contains("not a C++ identifier"));
  }
}
