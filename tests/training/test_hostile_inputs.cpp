// Regression tests for what a bad-input probe found in the trainer's loaders (issue 13): each
// failed before its fix.
#include "test_common.hpp"

#include "training/checkpoint.hpp"
#include "training/config.hpp"
#include "training/data.hpp"

#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>

using namespace bitnetmcu::train;
namespace fs = std::filesystem;

namespace {
fs::path temp_dir(const std::string& name) {
  const fs::path d = fs::temp_directory_path() / ("bitnetmcu_hostile_tests_" + std::to_string(getpid())) / name;
  fs::create_directories(d);
  return d;
}
void write(const fs::path& p, const std::string& bytes) { std::ofstream(p, std::ios::binary) << bytes; }
std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST_CASE("checkpoint: files of 8 to 11 bytes (magic, part of the version) are reported truncated") {
  // The reader's end (size - 4 for the CRC) fell before its position: the unsigned bounds check
  // wrapped and the version was read from past the buffer.
  const fs::path d = temp_dir("ckpt_short");
  Checkpoint ck;
  ck.config_yaml = "model: FCMNIST\n";
  save_checkpoint_atomic((d / "good.pt").string(), ck);
  std::ifstream in(d / "good.pt", std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  const std::string good = s.str();
  for (size_t n = 8; n <= 15; ++n) {
    INFO("first " << n << " bytes");
    write(d / "short.pt", good.substr(0, n));
    const std::string err = error_of([&] { load_checkpoint((d / "short.pt").string()); });
    CHECK_THAT(err, Catch::Contains("short.pt") && Catch::Contains("file is truncated") && Catch::Contains("header"));
    CHECK_THAT(err, !Catch::Contains("version"));
  }
}

TEST_CASE("config: a directory given as the configuration file is an error, not a default run") {
  const fs::path d = temp_dir("config_dir");
  const std::string err = error_of([&] { load_config(d.string(), {}); });
  CHECK_THAT(err, Catch::Contains(d.string()) && Catch::Contains("not a regular file"));
}

TEST_CASE("IDX: dimensions whose product overflows 64 bits are reported as such") {
  const fs::path d = temp_dir("idx_overflow");
  // 00 00 08 04, four dimensions of 2^32 - 1: the product does not fit size_t.
  std::string b = {0, 0, 8, 4};
  for (int k = 0; k < 4; ++k) b += std::string(4, '\xff');
  b += "xyz";
  write(d / "huge", b);
  const std::string err = error_of([&] { read_idx((d / "huge").string()); });
  CHECK_THAT(err, Catch::Contains("huge") && Catch::Contains("truncated") &&
                      Catch::Contains("4294967295 x 4294967295 x 4294967295 x 4294967295") &&
                      Catch::Contains("more than 2^64") && Catch::Contains("the file has 3"));
}

TEST_CASE("quantize_input: NaN or infinite inputs are rejected, naming the first one") {
  torch::Tensor x = torch::randn({3, 256});
  x[1][17] = std::numeric_limits<float>::quiet_NaN();
  x[2][3] = std::numeric_limits<float>::infinity();
  const std::string err = error_of([&] { quantize_input(x); });
  CHECK_THAT(err, Catch::Contains("image 1, value 17") && Catch::Contains("nan") && Catch::Contains("finite"));
  x[1][17] = 0.5f;
  CHECK_THAT(error_of([&] { quantize_input(x); }), Catch::Contains("image 2, value 3") && Catch::Contains("inf"));
}

TEST_CASE("config: text values with quotes, backslashes or control characters survive config_to_yaml") {
  // Found by fuzz_config: config_to_yaml wrote `output_dir: "<value>"` unescaped, so a value
  // holding a quote made the YAML stored in every checkpoint unreadable.
  Config c;
  c.output_dir = std::string("a\"b\\c\td\x01\x7f" "e", 10);
  c.runtag = "say \"hi\"_";
  c.data_dir = std::string("x\0y", 3);
  const std::string yaml = config_to_yaml(c);
  Config back;
  REQUIRE_NOTHROW(back = config_from_yaml_text(yaml, "dump"));
  CHECK(back.output_dir == c.output_dir);
  CHECK(back.runtag == c.runtag);
  CHECK(back.data_dir == c.data_dir);
  CHECK(config_to_yaml(back) == yaml);
  // the input the fuzzer found, from tests/fuzz/corpus/fuzz_config/
  const Config found = config_from_yaml_text(std::string("output_dir: \x02\x00\"modeldata/zoo\"\n", 30), "found.yaml");
  CHECK(config_to_yaml(config_from_yaml_text(config_to_yaml(found), "dump")) == config_to_yaml(found));
}
