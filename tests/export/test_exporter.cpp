// Exporter tests that need LibTorch (library bitnetmcu_exporter): the engine against the LibTorch
// emulation for every scheme, and the error cases of whole runs on bad checkpoints. The
// torch-free core (packing, statistics, fit estimate) is tested in test_export_core.cpp.
#include <torch/torch.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>

#include <unistd.h>

#include "training/checkpoint.hpp"
#include "training/config.hpp"
#include "training/models.hpp"
#include "training/exporter/emulate.hpp"
#include "training/exporter/run_export.hpp"

#include "random_model.hpp"

// After LibTorch: glog defines its own CHECK, Catch's must win.
#include <catch2/catch.hpp>

using namespace bitnetmcu;
using namespace bitnetmcu::exporter;
using namespace bitnetmcu::exporter::testing;
namespace fs = std::filesystem;

namespace {

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
    CHECK_THAT(export_error(o), Catch::Contains("does not fit ch32v003: flash") && Catch::Contains("/ " + std::to_string(kCh32v003.flash_bytes)));
    o.target = "ch32v009";
    CHECK_THAT(export_error(o), Catch::Contains("--target 'ch32v009' is unknown"));
  }
  SECTION("a name that is no C++ identifier") {
    ExportOptions o = options_for("whatever.pt");
    o.name = "3-layers";
    CHECK_THAT(export_error(o), Catch::Contains("not a C++ identifier"));
  }
}
