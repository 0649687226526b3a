// Runs every shipped model header over the 10,000 MNIST test images with the engine and checks
// that it classifies exactly kIntCorrect of them right, as recorded by the exporter.
#include <cstdio>
#include <string>

#include "training/data.hpp"
#include "shipped_models.inc"

namespace {
struct Outcome {
  int failures = 0;
};

template <class Net>
uint32_t count_correct(const int8_t* images, const int64_t* labels, int64_t n) {
  static int32_t scratch[Net::scratch_words];
  uint32_t correct = 0;
  for (int64_t i = 0; i < n; ++i) correct += Net::run(images + 256 * i, scratch) == labels[i];
  return correct;
}
}  // namespace

int main(int argc, char** argv) {
  bitnetmcu::train::Config cfg;
  if (argc > 1) cfg.data_dir = argv[1];
  const auto split = bitnetmcu::train::load_split(cfg, /*train=*/false);
  const torch::Tensor q = bitnetmcu::train::quantize_input(split.images).contiguous();
  const torch::Tensor labels = split.labels.contiguous();
  const int64_t n = q.size(0);
  const int8_t* images = q.data_ptr<int8_t>();
  const int64_t* y = labels.data_ptr<int64_t>();
  int failures = 0, models = 0;
#define SHIPPED_MODEL(name)                                                                             \
  {                                                                                                    \
    namespace m = bitnetmcu_models::name;                                                              \
    const uint32_t correct = count_correct<m::Net>(images, y, n);                                      \
    const bool ok = n == m::kVerifiedImages && correct == m::kIntCorrect;                              \
    std::printf("%-40s %5u / %lld correct (header: %u / %u) %s\n", #name, correct, (long long)n,       \
                m::kIntCorrect, m::kVerifiedImages, ok ? "ok" : "MISMATCH");                          \
    failures += !ok;                                                                                   \
    ++models;                                                                                          \
  }
  SHIPPED_MODELS
  std::printf("%d shipped models, %d mismatches\n", models, failures);
  return failures ? 1 : 0;
}
