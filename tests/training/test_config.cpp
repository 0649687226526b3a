// Configuration: every kind of error names the file, line, key and expected value; --set;
// round trip through config_to_yaml; the shipped trainingparameters.yaml documents every key.
#include <catch2/catch.hpp>

#include "training/config.hpp"

#include <fstream>
#include <sstream>

using namespace bitnetmcu;
using namespace bitnetmcu::train;

namespace {
std::string error_of(const std::string& yaml, const std::vector<std::string>& sets = {}) {
  try {
    Config c = config_from_yaml_text(yaml, "t.yaml");
    for (const auto& s : sets) apply_override(c, s);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST_CASE("config: defaults and layer scheme resolution") {
  const Config fc = config_from_yaml_text("", "empty");
  CHECK(fc.layer_names() == std::vector<std::string>{"fc1", "fc2", "fc3", "fcl"});
  CHECK(fc.layer_scheme("fc1") == SchemeId::Sym4);
  const Config cnn = config_from_yaml_text("model: CNNMNIST\nnetwork_width3: 0\nQuantType_fcl: Ternary\n", "t");
  CHECK(cnn.layer_names() == std::vector<std::string>{"conv1", "conv2", "conv3", "fc1", "fc2", "fcl"});
  CHECK(cnn.layer_scheme("conv2") == SchemeId::Int8);
  CHECK(cnn.layer_scheme("fc1") == SchemeId::Sym2);
  CHECK(cnn.layer_scheme("fc2") == SchemeId::Sym4);
  CHECK(cnn.layer_scheme("fcl") == SchemeId::Ternary);
  const Config none = config_from_yaml_text("QuantType: None\nQuantType_fc2: FP130\n", "t");
  CHECK(!none.layer_scheme("fc1").has_value());
  CHECK(none.layer_scheme("fc2") == SchemeId::FP130);
}

TEST_CASE("config: errors name file, line, key and the expected value") {
  const std::string unknown = error_of("model: FCMNIST\nbatch_sise: 64\n");
  CHECK_THAT(unknown, Catch::Contains("t.yaml:2") && Catch::Contains("batch_sise") &&
                          Catch::Contains("valid keys") && Catch::Contains("batch_size"));
  CHECK_THAT(error_of("\n\nbatch_size: many\n"),
             Catch::Contains("t.yaml:3") && Catch::Contains("batch_size") && Catch::Contains("an integer in"));
  CHECK_THAT(error_of("batch_size: 0\n"), Catch::Contains("t.yaml:1") && Catch::Contains("[1, "));
  CHECK_THAT(error_of("learning_rate: -1\n"), Catch::Contains("learning_rate") && Catch::Contains("a number in"));
  CHECK_THAT(error_of("augmentation: maybe\n"), Catch::Contains("true or false"));
  CHECK_THAT(error_of("QuantType: 3bit\n"), Catch::Contains("one of Binary, Ternary") && Catch::Contains("'3bit'"));
  CHECK_THAT(error_of("model: RNN\n"), Catch::Contains("one of FCMNIST, CNNMNIST"));
  CHECK_THAT(error_of("num_epochs:\n"), Catch::Contains("got nothing"));
  CHECK_THAT(error_of("num_epochs: [1, 2]\n"), Catch::Contains("a list or mapping"));
  CHECK_THAT(error_of("seed: 1\nseed: 2\n"), Catch::Contains("t.yaml:2") && Catch::Contains("given twice"));
  CHECK_THAT(error_of("- a\n- b\n"), Catch::Contains("expected a mapping"));
  CHECK_THAT(error_of("model: [unclosed\n"), Catch::Contains("invalid YAML"));
  CHECK_THAT(error_of("QuantType_conv1: 4bit\n"), Catch::Contains("no conv layers"));
  CHECK_THAT(error_of("network_width3: 0\nQuantType_fc3: 4bit\n"), Catch::Contains("no fc3"));
  CHECK_THAT(error_of("runtag: a/b\n"), Catch::Contains("runtag"));
}

TEST_CASE("config: --set overrides and their errors") {
  Config c = config_from_yaml_text("batch_size: 64\n", "t");
  apply_override(c, "batch_size=32");
  apply_override(c, "QuantType=\"FP130\"");
  apply_override(c, "augmentation=false");
  CHECK(c.batch_size == 32);
  CHECK(c.QuantType == "FP130");
  CHECK(!c.augmentation);
  CHECK_THAT(error_of("", {"batch_size"}), Catch::Contains("--set batch_size") && Catch::Contains("key=value"));
  CHECK_THAT(error_of("", {"nope=1"}), Catch::Contains("unknown key 'nope'"));
  CHECK_THAT(error_of("", {"num_epochs=x"}), Catch::Contains("--set num_epochs=x") && Catch::Contains("an integer"));
  REQUIRE_THROWS_WITH(load_config("/nonexistent/x.yaml", {}), Catch::Contains("/nonexistent/x.yaml"));
}

TEST_CASE("config: config_to_yaml round-trips every key") {
  Config c;
  c.model = "CNNMNIST", c.cnn_width = 48, c.learning_rate = 0.0123456789, c.augmentation = false;
  c.runtag = "x_", c.QuantType_fc1 = "Ternary", c.elastictransformprobability = 0.3;
  const Config back = config_from_yaml_text(config_to_yaml(c), "dump");
  CHECK(config_to_yaml(back) == config_to_yaml(c));
  CHECK(back.learning_rate == c.learning_rate);
}

TEST_CASE("config: the shipped trainingparameters.yaml loads and mentions every key") {
  const std::string path = std::string(BITNETMCU_SOURCE_DIR) + "/trainingparameters.yaml";
  const Config c = load_config(path, {});
  CHECK(c.model == "FCMNIST");
  CHECK(c.QuantType == "4bitsym");
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  for (const std::string& key : config_key_names()) {
    INFO(key);
    CHECK(text.str().find("\n" + key + ":") != std::string::npos);
  }
}
