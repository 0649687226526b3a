// libFuzzer target: the .bnm parser (model_file.hpp) and, for every file it accepts, inference
// (run_layers) on three images, and the exporter's LibTorch-free core on the parsed layers: the
// model it rebuilds (packed_model_from_layers) must write a model file that parses again and
// classifies the three images alike; its fit estimate and header text must not fail. Each input
// is parsed as given (checksum path) and again with its CRC recomputed, so mutations reach the
// layer checks behind the checksum.
#include <cstring>
#include <vector>

#include "bitnetmcu/bitnetmcu.hpp"
#include "training/exporter/exporter.hpp"

using namespace bitnetmcu;

namespace {
// Classes of three images: extremes (the largest |acc|), and a background with strokes (the
// row-sum offset path).
bool classify(const LayerDesc* layers, const ModelFileInfo& info, uint32_t cls[3]) {
  const RuntimeNeeds needs = runtime_needs(layers, info.n_layers);
  if (needs.words_a + needs.words_b > (size_t{1} << 24)) return false;  // 64 MB: beyond any file libFuzzer makes
  std::vector<int32_t> a(needs.words_a + 1), b(needs.words_b + 1);
  std::vector<int8_t> image(info.input_size);
  for (int pattern = 0; pattern < 3; ++pattern) {
    for (size_t i = 0; i < image.size(); ++i)
      image[i] = static_cast<int8_t>(pattern == 0 ? -128 : pattern == 1 ? 127 : (i % 7 ? -42 : 127 - (i % 256)));
    const int32_t* logits = nullptr;
    cls[pattern] = run_layers(layers, info.n_layers, image.data(), a.data(), b.data(), &logits);
    if (cls[pattern] >= info.num_classes) __builtin_trap();  // a parsed model must classify
  }
  return true;
}

void parse_and_run(const uint8_t* bytes, size_t size) {
  LayerDesc layers[kModelFileMaxLayers];
  ModelFileInfo info{};
  if (parse_model_file(bytes, size, layers, kModelFileMaxLayers, &info) != ModelFileError::Ok) return;
  uint32_t cls[3];
  if (!classify(layers, info, cls)) return;

  const exporter::PackedModel m = exporter::packed_model_from_layers(layers, info.n_layers, info.input_size);
  const std::vector<uint8_t> file = exporter::model_file_bytes(m);
  std::vector<uint32_t> words(file.size() / 4 + 1);
  std::memcpy(words.data(), file.data(), file.size());
  LayerDesc again[kModelFileMaxLayers];
  ModelFileInfo info_again{};
  if (parse_model_file(reinterpret_cast<const uint8_t*>(words.data()), file.size(), again, kModelFileMaxLayers,
                       &info_again) != ModelFileError::Ok)
    __builtin_trap();  // the exporter wrote a file the engine rejects
  // The same layers, weights and row sums as the file given (whatever its non-canonical bits).
  if (info_again.n_layers != info.n_layers || info_again.input_size != info.input_size) __builtin_trap();
  for (uint32_t l = 0; l < info.n_layers; ++l) {
    const LayerDesc &x = layers[l], &y = again[l];
    if (x.kind != y.kind || x.scheme != y.scheme || x.shift != y.shift || x.n_in != y.n_in || x.n_out != y.n_out ||
        !x.rowsum != !y.rowsum || (x.rowsum && std::memcmp(x.rowsum, y.rowsum, 4u * x.n_out)))
      __builtin_trap();
    size_t weight_bytes = 27u * x.n_out;  // CNN: one code byte per weight
    if (x.kind == LayerKind::Dense)
      visit_scheme(x.scheme, [&](auto s) {
        using S = decltype(s);
        weight_bytes = dense_weight_words<S>(x.n_in, x.n_out) * sizeof(typename S::word_t);
      });
    if (std::memcmp(x.weights, y.weights, weight_bytes)) __builtin_trap();
  }
  uint32_t cls_again[3];
  if (!classify(again, info_again, cls_again) || std::memcmp(cls, cls_again, sizeof cls)) __builtin_trap();
  (void)exporter::check_target(m, kCh32v003);
  (void)exporter::model_header_text(m, exporter::HeaderMeta{"fuzz", "fuzz_model_file", "fuzz", "x.bnm", "0", ""});
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
