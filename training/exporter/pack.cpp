// Shape checks, packing with the engine's traits, statistics and engine runs. No LibTorch here.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <string>

#include "bitnetmcu/layout.hpp"
#include "bitnetmcu/model_file.hpp"
#include "exporter.hpp"

namespace bitnetmcu::exporter {
namespace {

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// Number of distinct codes a scheme has (trits count 3).
uint32_t code_space(SchemeId id) {
  uint32_t n = 0;
  visit_scheme(id, [&](auto s) {
    using S = decltype(s);
    if constexpr (S::code_bits == 0)
      n = 3;
    else
      n = 1u << S::code_bits;
  });
  return n;
}

bool is_conv(const QuantizedTensor& t) { return t.name.rfind("conv", 0) == 0; }

const QuantizedTensor& require(const std::vector<QuantizedTensor>& tensors, const std::string& name) {
  for (const auto& t : tensors)
    if (t.name == name) return t;
  throw ExportError("checkpoint has no layer '" + name + "' (expected fc1, fc2, [fc3], fcl)");
}

EngineLayer pack_dense(const QuantizedTensor& t, bool with_rowsum) {
  if (t.shape.size() != 2 || t.shape[0] <= 0 || t.shape[1] <= 0)
    throw ExportError("layer " + t.name + ": weight shape " + shape_text(t.shape) +
                      " cannot be packed as a dense layer (expected [out, in])");
  const auto n_out = static_cast<uint32_t>(t.shape[0]), n_in = static_cast<uint32_t>(t.shape[1]);
  if (n_out > 65536 || n_in > 65536)
    throw ExportError("layer " + t.name + ": shape " + shape_text(t.shape) +
                      " exceeds the engine's 65536 inputs/outputs per layer");
  EngineLayer l;
  l.name = t.name;
  l.kind = LayerKind::Dense;
  l.scheme = t.scheme;
  l.n_in = n_in;
  l.n_out = n_out;
  visit_scheme(t.scheme, [&](auto s) {
    using S = decltype(s);
    const int64_t bound = dense_acc_bound(n_in, S::max_abs, with_rowsum);
    if (bound >= 0x7FFFFFFFll)
      throw ExportError("layer " + t.name + ": " + std::to_string(n_in) + " inputs of " + S::name +
                        " weights can overflow the int32 accumulator (bound " + std::to_string(bound) + ")");
    std::vector<uint8_t> scratch(n_out);
    std::vector<typename S::word_t> words(dense_weight_words<S>(n_in, n_out));
    pack_columns<S>(t.codes.data(), n_out, n_in, scratch.data(), words.data());
    if constexpr (sizeof(typename S::word_t) == 2)
      l.words16 = std::move(words);
    else
      l.words32 = std::move(words);
  });
  if (with_rowsum) {
    l.rowsum.assign(n_out, 0);
    for (uint32_t o = 0; o < n_out; ++o)
      for (uint32_t i = 0; i < n_in; ++i) l.rowsum[o] += t.ints[size_t(o) * n_in + i];
  }
  return l;
}

EngineLayer pack_cnn(const std::vector<const QuantizedTensor*>& convs, uint32_t shift, uint32_t side) {
  const int64_t channels = convs[0]->shape.empty() ? 0 : convs[0]->shape[0];
  const SchemeId scheme = convs[0]->scheme;
  for (const QuantizedTensor* t : convs) {
    const std::vector<int64_t> expected{channels, 1, 3, 3};
    if (t->shape != expected || channels <= 0)
      throw ExportError("layer " + t->name + ": weight shape " + shape_text(t->shape) +
                        " cannot be packed into the engine's CNN block (expected [C, 1, 3, 3] with the same C "
                        "for conv1, conv2, conv3; C = " + std::to_string(channels) + ")");
    if (t->scheme != scheme)
      throw ExportError("layer " + t->name + " uses " + scheme_name(t->scheme) + " but conv1 uses " +
                        scheme_name(scheme) + ": the engine's CNN block takes one scheme for conv1..3");
  }
  if (shift > 31) throw ExportError("CNN activation shift " + std::to_string(shift) + " must be 0..31");
  int32_t max_abs = 0;
  visit_scheme(scheme, [&](auto s) { max_abs = decltype(s)::max_abs; });
  if (cnn_acc_bound(shift, max_abs) >= 0x7FFFFFFFll)
    throw ExportError("CNN activation shift " + std::to_string(shift) + " is too small for " + scheme_name(scheme) +
                      " conv weights: int32 could overflow");
  EngineLayer l;
  l.name = "cnn";
  l.kind = LayerKind::Cnn;
  l.scheme = scheme;
  l.shift = static_cast<uint8_t>(shift);
  l.n_in = side;
  l.n_out = static_cast<uint32_t>(channels);
  // One code byte per weight, [conv][channel][3][3] (layers.hpp cnn_layer).
  for (const QuantizedTensor* t : convs) l.conv.insert(l.conv.end(), t->codes.begin(), t->codes.end());
  return l;
}

// Weight and scratch bytes, counted as the typed Model<> counts them (Net::weight_bytes):
// packed words, int8 conv weights unpadded, rowsums.
void count_bytes(PackedModel& m) {
  for (const auto& l : m.layers)
    m.weight_bytes += l.kind == LayerKind::Cnn ? l.conv.size()
                                               : 4 * l.words32.size() + 2 * l.words16.size() +
                                                     l.rowsum_element_bytes() * l.rowsum.size();
  const auto d = m.descs();
  const RuntimeNeeds needs = runtime_needs(d.data(), static_cast<uint32_t>(d.size()));
  m.scratch_bytes = 4 * (needs.words_a + needs.words_b);
}

}  // namespace

LayerDesc EngineLayer::desc() const {
  const void* w = kind == LayerKind::Cnn ? static_cast<const void*>(conv.data())
                  : words16.empty()      ? static_cast<const void*>(words32.data())
                                         : static_cast<const void*>(words16.data());
  return {kind, scheme, shift, n_in, n_out, w, rowsum.empty() ? nullptr : rowsum.data()};
}

size_t EngineLayer::rowsum_element_bytes() const {
  for (int32_t v : rowsum)
    if (v < -32768 || v > 32767) return 4;
  return 2;
}

std::vector<LayerDesc> PackedModel::descs() const {
  std::vector<LayerDesc> d;
  for (const auto& l : layers) d.push_back(l.desc());
  return d;
}

void compute_stats(QuantizedTensor& t) {
  CodeStats& st = t.stats;
  st = CodeStats{};
  st.code_space = code_space(t.scheme);
  st.histogram.assign(st.code_space, 0);
  visit_scheme(t.scheme, [&](auto s) {
    using S = decltype(s);
    for (uint32_t c = 0; c < st.code_space; ++c) st.code_values.push_back(S::decode(static_cast<uint8_t>(c)));
    t.weight_bits = static_cast<uint64_t>(std::llround(S::bits_per_weight * double(t.codes.size())));
    if (t.shape.size() == 2)
      t.packed_bytes = dense_weight_words<S>(size_t(t.shape[1]), size_t(t.shape[0])) * sizeof(typename S::word_t);
    else
      t.packed_bytes = t.codes.size();  // conv weights: one code byte each in the CNN block
  });
  for (uint8_t c : t.codes)
    if (c < st.code_space) ++st.histogram[c];
  for (uint64_t count : st.histogram) {
    if (!count) continue;
    ++st.codes_used;
    const double p = double(count) / double(t.codes.size());
    st.entropy_bits -= p * std::log2(p);
  }
}

PackedModel pack_model(std::vector<QuantizedTensor> tensors, uint32_t cnn_shift, uint32_t input_size) {
  PackedModel m;
  for (auto& t : tensors) {
    if (t.codes.size() != t.ints.size())
      throw ExportError("layer " + t.name + ": codes and integer weights differ in count");
    size_t n = 1;
    for (int64_t d : t.shape) n *= d > 0 ? size_t(d) : 0;
    if (n != t.codes.size() || n == 0)
      throw ExportError("layer " + t.name + ": shape " + shape_text(t.shape) + " does not match its " +
                        std::to_string(t.codes.size()) + " weights");
    compute_stats(t);
  }
  std::vector<const QuantizedTensor*> convs;
  for (const char* name : {"conv1", "conv2", "conv3"})
    for (const auto& t : tensors)
      if (t.name == name) convs.push_back(&t);
  const bool any_conv = std::any_of(tensors.begin(), tensors.end(), is_conv);
  if (any_conv && convs.size() != 3)
    throw ExportError("checkpoint has " + std::to_string(convs.size()) +
                      " of the conv layers conv1, conv2, conv3: a CNN needs all three");
  if (!convs.empty()) {
    uint32_t side = 0;
    while ((side + 1) * (side + 1) <= input_size) ++side;
    if (side * side != input_size || side < 8 || side > 64)
      throw ExportError("a CNN takes a square image of side 8..64, but the model has " + std::to_string(input_size) +
                        " inputs");
    m.layers.push_back(pack_cnn(convs, cnn_shift, side));
  }

  std::vector<const QuantizedTensor*> dense{&require(tensors, "fc1"), &require(tensors, "fc2")};
  for (const auto& t : tensors)
    if (t.name == "fc3") dense.push_back(&t);
  dense.push_back(&require(tensors, "fcl"));
  for (const auto& t : tensors)
    if (!is_conv(t) && t.name != "fc1" && t.name != "fc2" && t.name != "fc3" && t.name != "fcl")
      throw ExportError("checkpoint layer '" + t.name + "' is not one the exporter knows (conv1..3, fc1, fc2, fc3, fcl)");

  for (const QuantizedTensor* t : dense) m.layers.push_back(pack_dense(*t, m.layers.empty()));

  // Each layer's inputs must be the previous layer's outputs; the first takes the input.
  m.input_size = input_size;
  uint32_t expected_in = m.input_size;
  for (size_t i = 0; i < m.layers.size(); ++i) {
    const EngineLayer& l = m.layers[i];
    const LayerDesc d = l.desc();
    const uint32_t in = static_cast<uint32_t>(layer_in_words(d));
    if (in != expected_in)
      throw ExportError("layer " + l.name + " takes " + std::to_string(in) + " inputs but " +
                        (i ? "layer " + m.layers[i - 1].name + " gives " : std::string("the image has ")) +
                        std::to_string(expected_in) + ": shapes cannot be chained");
    expected_in = static_cast<uint32_t>(layer_out_words(d));
  }
  m.num_classes = expected_in;
  m.tensors = std::move(tensors);
  for (const auto& t : m.tensors) m.weight_bits += t.weight_bits;
  count_bytes(m);
  return m;
}

PackedModel packed_model_from_layers(const LayerDesc* layers, uint32_t n, uint32_t input_size) {
  PackedModel m;
  m.input_size = input_size;
  for (uint32_t i = 0; i < n; ++i) {
    const LayerDesc& d = layers[i];
    EngineLayer l;
    l.name = d.kind == LayerKind::Cnn ? "cnn" : "fc" + std::to_string(i + 1);
    l.kind = d.kind;
    l.scheme = d.scheme;
    l.shift = d.shift;
    l.n_in = d.n_in;
    l.n_out = d.n_out;
    const bool known = visit_scheme(d.scheme, [&](auto s) {
      using S = decltype(s);
      if (d.kind == LayerKind::Cnn) {
        const auto* w = static_cast<const uint8_t*>(d.weights);
        l.conv.assign(w, w + 3 * 9 * size_t(d.n_out));
        return;
      }
      const auto* w = static_cast<const typename S::word_t*>(d.weights);
      const size_t words = dense_weight_words<S>(d.n_in, d.n_out);
      if constexpr (sizeof(typename S::word_t) == 2)
        l.words16.assign(w, w + words);
      else
        l.words32.assign(w, w + words);
    });
    if (!known) throw ExportError("layer " + std::to_string(i) + ": unknown scheme");
    if (d.rowsum) l.rowsum.assign(d.rowsum, d.rowsum + d.n_out);
    m.layers.push_back(std::move(l));
  }
  m.num_classes = n ? static_cast<uint32_t>(layer_out_words(layers[n - 1])) : 0;
  count_bytes(m);
  return m;
}

void run_engine(const PackedModel& model, const int8_t* images, size_t n, std::vector<uint8_t>& predictions,
                std::vector<int32_t>& logits) {
  const auto d = model.descs();
  const RuntimeNeeds needs = runtime_needs(d.data(), static_cast<uint32_t>(d.size()));
  std::vector<int32_t> a(needs.words_a), b(needs.words_b);
  predictions.resize(n);
  logits.resize(n * model.num_classes);
  for (size_t i = 0; i < n; ++i) {
    const int32_t* last = nullptr;
    const uint32_t cls = run_layers(d.data(), static_cast<uint32_t>(d.size()), images + i * model.input_size,
                                    a.data(), b.data(), &last);
    if (cls == UINT32_MAX || !last) throw ExportError("engine rejected the packed model (unknown layer)");
    predictions[i] = static_cast<uint8_t>(cls);
    std::copy(last, last + model.num_classes, logits.begin() + static_cast<std::ptrdiff_t>(i * model.num_classes));
  }
}

}  // namespace bitnetmcu::exporter
