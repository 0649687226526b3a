// Random quantized tensors and MNIST-like images for the exporter tests (torch-free).
#pragma once
#include <random>
#include <string>
#include <vector>

#include "training/exporter/exporter.hpp"

namespace bitnetmcu::exporter::testing {

// Random codes of a scheme for a tensor of the given shape.
inline QuantizedTensor random_tensor(const std::string& name, SchemeId scheme, std::vector<int64_t> shape,
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

inline std::vector<QuantizedTensor> random_fc(SchemeId scheme, std::vector<int64_t> widths, std::mt19937& rng) {
  std::vector<QuantizedTensor> v;
  const char* names[] = {"fc1", "fc2", "fc3", "fcl"};
  for (size_t l = 0; l + 1 < widths.size(); ++l) {
    const bool last = l + 2 == widths.size();
    v.push_back(random_tensor(last ? "fcl" : names[l], scheme, {widths[l + 1], widths[l]}, rng));
  }
  return v;
}

// Images shaped like MNIST after quantization: a constant background and a few strokes.
inline std::vector<int8_t> random_images(size_t n, std::mt19937& rng) {
  std::vector<int8_t> img(n * 256, -54);
  for (auto& v : img)
    if (rng() % 4 == 0) v = static_cast<int8_t>(static_cast<int>(rng() % 256) - 128);
  return img;
}

}  // namespace bitnetmcu::exporter::testing
