// Load-time decoding of a model into the fast path's layouts, the layer loop, and threads.
#include "fast_model.hpp"

#include <bitnetmcu/layout.hpp>

#include <algorithm>
#include <thread>

namespace bitnetmcu {
namespace host {

bool isa_available(Isa isa) {
  switch (isa) {
    case Isa::Scalar: return true;
#if defined(__x86_64__)
    case Isa::Sse2: return true;
    case Isa::Avx2: return __builtin_cpu_supports("avx2");
    case Isa::Avx512:
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512vnni");
#else
    default: return false;
#endif
  }
  return false;
}
Isa best_isa() {
  for (Isa isa : {Isa::Avx512, Isa::Avx2, Isa::Sse2})
    if (isa_available(isa)) return isa;
  return Isa::Scalar;
}
const char* isa_name(Isa isa) {
  const char* names[] = {"scalar", "sse2", "avx2", "avx512"};
  return names[static_cast<int>(isa)];
}

namespace {
uint32_t round_up(uint32_t v, uint32_t m) { return (v + m - 1) / m * m; }

// int16 pairs W[p][o][2] from a dense layer's pack_columns words, decoded by the scheme traits.
template <class S>
void decode_dense(const LayerDesc& d, uint32_t n_pairs, uint32_t n_out_pad, std::vector<int16_t>& w) {
  std::vector<uint8_t> codes(size_t(d.n_in) * d.n_out);
  unpack_columns<S>(static_cast<const typename S::word_t*>(d.weights), d.n_out, d.n_in, codes.data());
  w.assign(size_t(n_pairs) * n_out_pad * 2, 0);
  for (uint32_t o = 0; o < d.n_out; ++o)
    for (uint32_t i = 0; i < d.n_in; ++i)
      w[(size_t(i / 2) * n_out_pad + o) * 2 + i % 2] = static_cast<int16_t>(S::decode(codes[size_t(o) * d.n_in + i]));
}

// The three convs' decoded taps in the pair layouts of CnnData (w16 = w1, w2a, w2b, w3a, w3b).
template <class S>
void decode_cnn(const LayerDesc& d, uint32_t cp, std::vector<int16_t>& w16, std::vector<int32_t>& w1sum) {
  const uint8_t* codes = static_cast<const uint8_t*>(d.weights);
  const uint32_t C = d.n_out;
  auto tap = [&](uint32_t conv, uint32_t c, uint32_t t) { return static_cast<int16_t>(S::decode(codes[(conv * C + c) * 9 + t])); };
  w16.assign(size_t(5 + 4 * 3) * cp * 2, 0);
  w1sum.assign(cp, 0);
  int16_t* w1 = w16.data();
  for (uint32_t q = 0; q < 5; ++q)
    for (uint32_t c = 0; c < C; ++c) {
      w1[(q * cp + c) * 2] = tap(0, c, 2 * q);
      if (2 * q + 1 < 9) w1[(q * cp + c) * 2 + 1] = tap(0, c, 2 * q + 1);
    }
  for (uint32_t c = 0; c < C; ++c)
    for (uint32_t t = 0; t < 9; ++t) w1sum[c] += tap(0, c, t);
  for (uint32_t conv = 1; conv < 3; ++conv) {
    int16_t* a = w16.data() + size_t(5 + 6 * (conv - 1)) * cp * 2;  // [3][cp][2]: (ky=0, ky=1)
    int16_t* b = a + size_t(3) * cp * 2;                               // [3][cp][2]: (ky=2, 0)
    for (uint32_t kx = 0; kx < 3; ++kx)
      for (uint32_t c = 0; c < C; ++c) {
        a[(kx * cp + c) * 2] = tap(conv, c, kx);
        a[(kx * cp + c) * 2 + 1] = tap(conv, c, 3 + kx);
        b[(kx * cp + c) * 2] = tap(conv, c, 6 + kx);
      }
  }
}
}  // namespace

FastModel::FastModel(const LayerDesc* layers, uint32_t n_layers, Isa isa)
    : desc_(layers, layers + n_layers), layers_(n_layers), isa_(isa) {
#if defined(__x86_64__)
  if (isa == Isa::Avx2) kernels_ = &kAvx2Kernels;
  if (isa == Isa::Sse2) kernels_ = &kSse2Kernels;
  if (isa == Isa::Avx512) kernels_ = &kAvx512Kernels;
#endif
  if (!isa_available(isa)) kernels_ = nullptr, isa_ = Isa::Scalar;
  needs_ = runtime_needs(layers, n_layers);
  input_size_ = static_cast<uint32_t>(layer_in_words(layers[0]));
  num_classes_ = static_cast<uint32_t>(layer_out_words(layers[n_layers - 1]));
  for (uint32_t l = 0; l < n_layers; ++l) {
    const LayerDesc& d = layers[l];
    Layer& L = layers_[l];
    L.kind = d.kind;
    L.outputs = static_cast<uint32_t>(layer_out_words(d));
    max_act_ = std::max<size_t>(max_act_, L.outputs);
    if (d.kind == LayerKind::Dense) {
      const uint32_t pairs = (d.n_in + 1) / 2, pad = round_up(d.n_out, kOutBlock);
      visit_scheme(d.scheme, [&](auto s) { decode_dense<decltype(s)>(d, pairs, pad, L.w16); });
      L.dense = {L.w16.data(), d.rowsum, d.n_in, d.n_out, pairs, pad};
      max_acc_ = std::max<size_t>(max_acc_, pad);
      max_pairs_ = std::max<size_t>(max_pairs_, pairs);
    } else {
      const uint32_t cp = round_up(d.n_out, kOutBlock);
      visit_scheme(d.scheme, [&](auto s) { decode_cnn<decltype(s)>(d, cp, L.w16, L.w32); });
      const int16_t* w = L.w16.data();
      const size_t k = size_t(3) * cp * 2;
      L.cnn = {w, w + 5 * cp * 2, w + 5 * cp * 2 + k, w + 5 * cp * 2 + 2 * k, w + 5 * cp * 2 + 3 * k, L.w32.data(),
               d.n_in, d.n_out, cp, d.shift};
      max_acc_ = std::max<size_t>(max_acc_, L.outputs);
      const size_t s1 = d.n_in - 2;  // planes of s1^2 * cp; B also holds conv1's tap pairs first
      max_plane_ = std::max<size_t>(max_plane_, s1 * s1 * cp + cp + 6 * s1 * s1);
    }
  }
}

FastModel::Workspace FastModel::workspace() const {
  Workspace ws;
  ws.engine_a.resize(needs_.words_a + 1);
  ws.engine_b.resize(needs_.words_b + 1);
  ws.acc.resize(max_acc_);
  ws.pair_values.resize(max_pairs_);
  ws.pair_index.resize(max_pairs_);
  ws.plane_a.resize(max_plane_ + 16);  // + 64 bytes: the kernels use them as aligned vectors
  ws.plane_b.resize(max_plane_ + 16);
  ws.act.resize(max_act_);
  return ws;
}

uint32_t FastModel::run_engine(const int8_t* image, int32_t* logits, Workspace& ws) const {
  const int32_t* last = nullptr;
  const uint32_t c = run_layers(desc_.data(), static_cast<uint32_t>(desc_.size()), image, ws.engine_a.data(),
                                ws.engine_b.data(), &last);
  if (logits) std::copy(last, last + num_classes_, logits);
  return c;
}

uint32_t FastModel::run(const int8_t* image, int32_t* logits, Workspace& ws) const {
  if (!kernels_) return run_engine(image, logits, ws);
  auto aligned = [](std::vector<int32_t>& v) {
    return reinterpret_cast<int32_t*>((reinterpret_cast<uintptr_t>(v.data()) + 63) & ~uintptr_t(63));
  };
  const KernelScratch ks{ws.pair_values.data(), ws.pair_index.data(), aligned(ws.plane_a), aligned(ws.plane_b)};
  const int8_t* x = image;
  int32_t* acc = ws.acc.data();
  for (size_t l = 0; l < layers_.size(); ++l) {
    const Layer& L = layers_[l];
    if (L.kind == LayerKind::Dense)
      kernels_->dense(L.dense, x, acc, ks);
    else if (!kernels_->cnn(L.cnn, x, acc, ks))
      return run_engine(image, logits, ws);  // a plane outside int16: the engine's exact path
    if (l + 1 == layers_.size()) {
      if (logits) std::copy(acc, acc + L.outputs, logits);
      return argmax(acc, L.outputs);
    }
    shiftnorm_relu(acc, L.outputs, ws.act.data());
    x = ws.act.data();
  }
  return UINT32_MAX;
}

void FastModel::run_batch(const int8_t* images, size_t n, int64_t* classes, int32_t* logits, unsigned threads) const {
  unsigned t = threads ? threads : std::max(1u, std::thread::hardware_concurrency());
  t = static_cast<unsigned>(std::max<size_t>(1, std::min<size_t>(t, n / 256 + 1)));  // a thread start ~20 us
  auto work = [&](size_t begin, size_t end) {
    Workspace ws = workspace();
    for (size_t i = begin; i < end; ++i) {
      const uint32_t c = run(images + i * input_size_, logits ? logits + i * num_classes_ : nullptr, ws);
      if (classes) classes[i] = c;
    }
  };
  if (t <= 1) return work(0, n);
  std::vector<std::thread> pool;
  const size_t chunk = (n + t - 1) / t;
  for (size_t begin = 0; begin < n; begin += chunk) pool.emplace_back(work, begin, std::min(n, begin + chunk));
  for (auto& th : pool) th.join();
}

}  // namespace host
}  // namespace bitnetmcu
