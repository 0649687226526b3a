// Runs every shipped model header over the test set of its own dataset (read from the config
// the header embeds) with the engine and checks that it classifies exactly kIntCorrect of them
// right, as recorded by the exporter. Models with a feature quantizer (kInputOffset) get the raw
// feature values and quantize them with the header's own quantize_input(), as a device would.
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "training/config.hpp"
#include "training/data.hpp"
#include "shipped_models.inc"

namespace {

using bitnetmcu::train::Config;
using bitnetmcu::train::DataSplit;

std::string data_dir_override;

// The test split of a header's config, loaded once per distinct data configuration.
const DataSplit& test_split(const char* config_yaml) {
  static std::map<std::string, DataSplit> cache;
  Config cfg = bitnetmcu::train::config_from_yaml_text(config_yaml, "kConfigYaml of a shipped header");
  if (!data_dir_override.empty()) cfg.data_dir = data_dir_override;
  cfg.test_subset = 0;
  const std::string key = cfg.dataset + "|" + cfg.data_dir + "|" + cfg.data_train + "|" + cfg.data_test + "|" +
                          std::to_string(cfg.input_side) + "|" + std::to_string(cfg.seed) + "|" +
                          std::to_string(cfg.test_fraction) + "|" + cfg.input_quantization;
  auto it = cache.find(key);
  if (it == cache.end()) it = cache.emplace(key, bitnetmcu::train::load_split(cfg, /*train=*/false)).first;
  return it->second;
}

template <class Net>
uint32_t count_correct(const int8_t* samples, size_t inputs, const int64_t* labels, int64_t n) {
  static int32_t scratch[Net::scratch_words];
  uint32_t correct = 0;
  for (int64_t i = 0; i < n; ++i) correct += Net::run(samples + inputs * i, scratch) == labels[i];
  return correct;
}

int report(const char* name, uint32_t correct, int64_t n, uint32_t expected_correct, uint32_t expected_n) {
  const bool ok = n == expected_n && correct == expected_correct;
  std::printf("%-40s %5u / %lld correct (header: %u / %u) %s\n", name, correct, (long long)n, expected_correct,
              expected_n, ok ? "ok" : "MISMATCH");
  return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1) data_dir_override = argv[1];
  int failures = 0, models = 0;
  // Image models: the SPEC §2 per-image quantization of the normalized test images.
#define SHIPPED_MODEL(name)                                                                              \
  {                                                                                                     \
    namespace m = bitnetmcu_models::name;                                                               \
    const DataSplit& split = test_split(m::kConfigYaml);                                                \
    const torch::Tensor q = bitnetmcu::train::quantize_input(split.images).contiguous();                \
    const torch::Tensor y = split.labels.contiguous();                                                  \
    const uint32_t correct = count_correct<m::Net>(q.data_ptr<int8_t>(), q.size(1), y.data_ptr<int64_t>(), \
                                                   y.size(0));                                          \
    failures += report(#name, correct, y.size(0), m::kIntCorrect, m::kVerifiedImages);                  \
    ++models;                                                                                           \
  }
  // Feature models: raw values through the header's quantize_input (bitnetmcu::quantize_features).
#define SHIPPED_MODEL_RAW(name)                                                                          \
  {                                                                                                     \
    namespace m = bitnetmcu_models::name;                                                               \
    const DataSplit& split = test_split(m::kConfigYaml);                                                \
    const torch::Tensor raw = split.raw.to(torch::kFloat32).contiguous();                               \
    const torch::Tensor y = split.labels.contiguous();                                                  \
    std::vector<int8_t> q(static_cast<size_t>(raw.numel()));                                            \
    const bool shape_ok = raw.dim() == 2 && raw.size(1) == m::kInputSize;                               \
    if (shape_ok)                                                                                       \
      for (int64_t i = 0; i < raw.size(0); ++i)                                                         \
        m::quantize_input(raw.data_ptr<float>() + i * m::kInputSize, q.data() + i * m::kInputSize);     \
    const uint32_t correct =                                                                            \
        shape_ok ? count_correct<m::Net>(q.data(), m::kInputSize, y.data_ptr<int64_t>(), y.size(0)) : 0; \
    failures += report(#name, correct, y.size(0), m::kIntCorrect, m::kVerifiedImages);                  \
    ++models;                                                                                           \
  }
  SHIPPED_MODELS
  std::printf("%d shipped models, %d mismatches\n", models, failures);
  return failures ? 1 : 0;
}
