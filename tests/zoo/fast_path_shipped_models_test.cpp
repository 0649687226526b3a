// The host fast path (host/fast_model.hpp) on the real data: every shipped model file
// (modeldata/*.bnm) over the 10,000 MNIST test images, with every instruction set this CPU runs,
// must give exactly the engine's run_layers classes and last-layer accumulators, image by image.
#include <fast_model.hpp>

#include <bitnetmcu/model_file.hpp>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include "training/data.hpp"

namespace bn = bitnetmcu;
using bn::host::Isa;

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: fast_path_shipped_models_test MODELDATA_DIR MNIST_DIR\n");
    return 2;
  }
  bn::train::Config cfg;
  cfg.data_dir = argv[2];
  const auto split = bn::train::load_split(cfg, /*train=*/false);
  const torch::Tensor q = bn::train::quantize_input(split.images).contiguous();
  const torch::Tensor labels = split.labels.contiguous();
  const size_t n = static_cast<size_t>(q.size(0));
  const int8_t* images = q.data_ptr<int8_t>();
  int failures = 0, models = 0;
  std::vector<std::filesystem::path> files;
  for (const auto& e : std::filesystem::directory_iterator(argv[1]))
    if (e.path().extension() == ".bnm") files.push_back(e.path());
  std::sort(files.begin(), files.end());
  for (const auto& path : files) {
    std::ifstream f(path, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    const std::string data = ss.str();
    std::vector<uint32_t> words((data.size() + 3) / 4);
    std::memcpy(words.data(), data.data(), data.size());
    std::vector<bn::LayerDesc> layers(bn::kModelFileMaxLayers);
    bn::ModelFileInfo info{};
    if (bn::parse_model_file(reinterpret_cast<const uint8_t*>(words.data()), data.size(), layers.data(),
                             bn::kModelFileMaxLayers, &info) != bn::ModelFileError::Ok) {
      std::printf("%s: does not parse\n", path.c_str());
      ++failures;
      continue;
    }
    if (info.input_size != 256) continue;
    ++models;
    const uint32_t nc = info.num_classes;
    const bn::host::FastModel scalar(layers.data(), info.n_layers, Isa::Scalar);
    std::vector<int32_t> ref_logits(n * nc);
    std::vector<int64_t> ref_classes(n);
    scalar.run_batch(images, n, ref_classes.data(), ref_logits.data(), 0);
    size_t correct = 0;
    for (size_t i = 0; i < n; ++i) correct += ref_classes[i] == labels.data_ptr<int64_t>()[i];
    for (Isa isa : {Isa::Sse2, Isa::Avx2, Isa::Avx512}) {
      if (!bn::host::isa_available(isa)) continue;
      const bn::host::FastModel fast(layers.data(), info.n_layers, isa);
      std::vector<int32_t> logits(n * nc);
      std::vector<int64_t> classes(n);
      fast.run_batch(images, n, classes.data(), logits.data(), 0);
      size_t mismatches = 0;
      for (size_t i = 0; i < n; ++i)
        mismatches += classes[i] != ref_classes[i] ||
                      std::memcmp(&logits[i * nc], &ref_logits[i * nc], nc * sizeof(int32_t)) != 0;
      std::printf("%-40s %-7s %5zu / %zu correct, %zu images differ from run_layers %s\n",
                  path.filename().c_str(), bn::host::isa_name(isa), correct, n, mismatches, mismatches ? "MISMATCH" : "ok");
      failures += mismatches != 0;
    }
  }
  std::printf("%d shipped model files, %d failures\n", models, failures);
  return failures || models == 0 ? 1 : 0;
}
