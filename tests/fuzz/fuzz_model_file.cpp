// libFuzzer target: the .bnm parser (model_file.hpp) and, for every file it accepts, inference
// (run_layers) on three images. Each input is parsed as given (checksum path) and again with
// its CRC recomputed, so mutations reach the layer checks behind the checksum.
#include <cstring>
#include <vector>

#include "bitnetmcu/bitnetmcu.hpp"

using namespace bitnetmcu;

namespace {
void parse_and_run(const uint8_t* bytes, size_t size) {
  LayerDesc layers[kModelFileMaxLayers];
  ModelFileInfo info{};
  if (parse_model_file(bytes, size, layers, kModelFileMaxLayers, &info) != ModelFileError::Ok) return;
  const RuntimeNeeds needs = runtime_needs(layers, info.n_layers);
  if (needs.words_a + needs.words_b > (size_t{1} << 24)) return;  // 64 MB: beyond any file libFuzzer makes
  std::vector<int32_t> a(needs.words_a + 1), b(needs.words_b + 1);
  std::vector<int8_t> image(info.input_size);
  for (int pattern = 0; pattern < 3; ++pattern) {
    // extremes (the largest |acc|), and a background with strokes (the row-sum offset path)
    for (size_t i = 0; i < image.size(); ++i)
      image[i] = static_cast<int8_t>(pattern == 0 ? -128 : pattern == 1 ? 127 : (i % 7 ? -42 : 127 - (i % 256)));
    const int32_t* logits = nullptr;
    const uint32_t cls = run_layers(layers, info.n_layers, image.data(), a.data(), b.data(), &logits);
    if (cls >= info.num_classes) __builtin_trap();  // a parsed model must classify
  }
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<uint32_t> words(size / 4 + 1);  // the parser wants 4-byte alignment
  auto* bytes = reinterpret_cast<uint8_t*>(words.data());
  if (size) std::memcpy(bytes, data, size);
  parse_and_run(bytes, size);
  if (size >= 8 + 16 + 4) {
    const uint32_t crc = crc32(bytes, size - 4);
    for (int i = 0; i < 4; ++i) bytes[size - 4 + i] = static_cast<uint8_t>(crc >> (8 * i));
    parse_and_run(bytes, size);
  }
  return 0;
}
