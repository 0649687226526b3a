// Models: a compile-time typed layer list (firmware, exported headers) and a run-time layer
// list (exporter verification, Python), both running the same layer functions of layers.hpp.
//
//   using Net = Model<Dense<Sym4, 256, 64, fc1_w, fc1_rowsum>, Dense<Sym4, 64, 10, fc2_w>>;
//   static int32_t scratch[Net::scratch_words];
//   uint32_t digit = Net::run(image, scratch);
//
// Every layer but the last is followed by ShiftNorm+ReLU to int8; the class is the argmax of
// the last layer's accumulators. Activations ping-pong between two int32 buffers A and B; each
// int8 activation vector is written in place over the accumulators it came from.
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "layers.hpp"
#include "schemes.hpp"

#ifndef BITNETMCU_SCRATCH_BUDGET
#define BITNETMCU_SCRATCH_BUDGET 0x7FFFFFFF  // bytes; firmware builds set their chip's budget
#endif

namespace bitnetmcu {

enum class LayerKind : uint8_t { Dense = 0, Cnn = 1 };

// Run-time description of one layer.
//   Dense: weights = pack_columns<S> words, rowsum = per-output weight sums or null.
//   Cnn  : n_in = image side, n_out = channels, weights = one code byte each [3][C][9] of `scheme`
//          (8bit: the int8 weight), shift = activation shift.
struct LayerDesc {
  LayerKind kind;
  SchemeId scheme;
  uint8_t shift;
  uint32_t n_in, n_out;
  const void* weights;
  const int32_t* rowsum;
};

// ---- layer types ------------------------------------------------------------------------------

namespace detail {
template <class P>
struct RowSumType {
  using type = int32_t;  // no row sums (nullptr)
};
template <class T>
struct RowSumType<const T*> {
  using type = T;
};
template <class T>
struct RowSumType<T*> {
  using type = T;
};
// The bit-plane kernels' lane scratch, one per size, shared by the layers (left zero by each).
template <uint32_t Words>
inline uint32_t plane_scratch[Words];

// A layer's weights in the bit-plane kernels' layout, converted at compile time (only these
// reach the firmware's flash: the pack_columns array is then not odr-used), and its scratch.
template <class S, uint32_t In, uint32_t Out, const typename S::word_t* W>
struct PlaneWeights {
  struct Words {
    uint32_t v[plane_column_words(In, Out)];
  };
  static constexpr Words make() {
    Words r{};
    plane_columns<S>(W, Out, In, r.v);
    return r;
  }
  alignas(4) static constexpr Words columns = make();
  static constexpr PlaneLayer layer{columns.v, In, Out, plane_scratch<plane_scratch_words(Out)>};
};
}  // namespace detail

// The kernel a typed dense layer runs: Tables (kernels/dense.hpp, every scheme) or Planes
// (kernels/dense_planes.hpp, schemes with plane traits: fewer RV32EC instructions, for about
// 0.5 KB more code, 0.4 KB more stack and whole words per 8 outputs). The exporter picks Planes
// where the model still fits its chip (docs/engine.md). A Planes layer runs the bit-plane kernel
// where BITNETMCU_DENSE_PLANES is 1 (RISC-V by default) and the table kernel elsewhere.
enum class DenseKernel : uint8_t { Tables, Planes };

// RowSum: nullptr, or a `const int16_t*` / `const int32_t*` array of Out row sums.
template <class S, uint32_t In, uint32_t Out, const typename S::word_t* W, auto RowSum = nullptr,
          DenseKernel K = DenseKernel::Tables>
struct Dense {
  static_assert(K == DenseKernel::Tables || has_plane_traits<S>, "DenseKernel::Planes needs a scheme with plane traits");
  static constexpr bool planes = K == DenseKernel::Planes && BITNETMCU_DENSE_PLANES;
  using scheme = S;
  using rowsum_t = typename detail::RowSumType<decltype(RowSum)>::type;
  static constexpr bool has_rowsum = !static_cast<bool>(RowSum == nullptr);
  static constexpr uint32_t inputs = In, outputs = Out;
  static constexpr size_t weight_bytes =
      dense_weight_words<S>(In, Out) * sizeof(typename S::word_t) + (has_rowsum ? sizeof(rowsum_t) * Out : 0);
  static constexpr size_t out_words = Out;  // int32 accumulators
  static constexpr size_t work_words = 0;   // extra scratch in the other buffer
  static constexpr int64_t acc_bound = dense_acc_bound(In, S::max_abs, has_rowsum);
  static_assert(fits_accumulator(acc_bound), "dense layer too large: int32 accumulator could overflow");
  static_assert(In > 0 && Out > 0, "empty dense layer");
  static void run(const int8_t* x, int32_t* out, int32_t* /*work*/) {
    if constexpr (planes)
      dense_layer_planes<S, Out>(detail::PlaneWeights<S, In, Out, W>::layer, RowSum, x, out);
    else
      dense_layer<S>(W, RowSum, In, Out, x, out);
  }
  // The run-time description (int32 row sums only: LayerDesc and model files carry int32).
  static constexpr LayerDesc desc() {
    if constexpr (has_rowsum) {
      static_assert(sizeof(rowsum_t) == 4, "describe() needs int32 row sums");
      return {LayerKind::Dense, S::id, 0, In, Out, W, RowSum};
    } else {
      return {LayerKind::Dense, S::id, 0, In, Out, W, nullptr};
    }
  }
};

template <uint32_t Side, uint32_t Channels, uint32_t Shift, const uint8_t* W, class S = Int8>
struct Cnn {
  using scheme = S;
  static constexpr uint32_t inputs = Side * Side, side_out = cnn_output_side(Side);
  static constexpr uint32_t outputs = Channels * side_out * side_out;
  static constexpr size_t weight_bytes = 3 * 9 * Channels;
  static constexpr size_t out_words = outputs;
  static constexpr size_t work_words = cnn_work_words(Side);  // the streamed channel block's rows
  static_assert(Side >= 8 && Side <= 64, "CNN input side out of range");
  static_assert(side_out > 0, "CNN input side too small: the block has no outputs (side 12 at least)");
  static_assert(fits_accumulator(cnn_acc_bound(Shift, S::max_abs)), "CNN activation shift too small: int32 overflow");
  static void run(const int8_t* x, int32_t* out, int32_t* work) { cnn_layer<S>(W, Side, Channels, Shift, x, work, out); }
  static constexpr LayerDesc desc() {
    return {LayerKind::Cnn, S::id, static_cast<uint8_t>(Shift), Side, Channels, W, nullptr};
  }
};

// ---- the typed model ------------------------------------------------------------------------

namespace detail {
template <class... L>
struct LayerList;
template <class First, class... Rest>
struct LayerList<First, Rest...> {
  static constexpr size_t count = 1 + sizeof...(Rest);
  // Buffer needs, in int32 words, of layers writing to buffer A (even index) and B (odd).
  // A layer writes its outputs to its own buffer and uses the other one as work space.
  static constexpr size_t max2(size_t a, size_t b) { return a > b ? a : b; }
  static constexpr size_t words_a = max2(First::out_words, LayerList<Rest...>::words_b);
  static constexpr size_t words_b = max2(First::work_words, LayerList<Rest...>::words_a);
  static constexpr size_t weight_bytes = First::weight_bytes + LayerList<Rest...>::weight_bytes;
  static constexpr uint32_t last_outputs = sizeof...(Rest) ? LayerList<Rest...>::last_outputs : First::outputs;
  static constexpr uint32_t first_inputs = First::inputs;

  static void run(const int8_t* x, int32_t* mine, int32_t* other, int32_t*& last) {
    First::run(x, mine, other);
    if constexpr (sizeof...(Rest) > 0) {
      int8_t* act = reinterpret_cast<int8_t*>(mine);
      shiftnorm_relu(mine, First::outputs, act);
      LayerList<Rest...>::run(act, other, mine, last);
    } else {
      last = mine;
    }
  }
  static constexpr void describe(LayerDesc* out) {
    *out = First::desc();
    if constexpr (sizeof...(Rest) > 0) LayerList<Rest...>::describe(out + 1);
  }
};
template <>
struct LayerList<> {
  static constexpr size_t count = 0, words_a = 0, words_b = 0, weight_bytes = 0;
  static constexpr uint32_t last_outputs = 0, first_inputs = 0;
};

// Each layer's outputs must be the next layer's inputs.
template <class A, class... More>
constexpr bool layers_chain() {
  uint32_t outs[] = {A::outputs, More::outputs...};
  uint32_t ins[] = {A::inputs, More::inputs...};
  for (size_t i = 0; i + 1 < 1 + sizeof...(More); ++i)
    if (outs[i] != ins[i + 1]) return false;
  return true;
}
}  // namespace detail

template <class... Layers>
struct Model {
  using List = detail::LayerList<Layers...>;
  static_assert(sizeof...(Layers) > 0, "a model needs at least one layer");
  static constexpr size_t num_layers = sizeof...(Layers);
  static constexpr size_t words_a = List::words_a, words_b = List::words_b;
  static constexpr size_t scratch_words = words_a + words_b;
  static constexpr size_t scratch_bytes = 4 * scratch_words;
  static constexpr size_t weight_bytes = List::weight_bytes;
  static constexpr uint32_t input_size = List::first_inputs;  // int8 values run() reads per image
  static constexpr uint32_t num_classes = List::last_outputs;
  static_assert(detail::layers_chain<Layers...>(), "a layer's outputs differ from the next layer's inputs");
  static_assert(scratch_bytes <= BITNETMCU_SCRATCH_BUDGET,
                "model scratch RAM exceeds BITNETMCU_SCRATCH_BUDGET for this target");

  // Runs one image (input_size int8 values). `scratch`: scratch_words int32.
  // If `logits` is given, the last layer's accumulators are copied there.
  static uint32_t run(const int8_t* image, int32_t* scratch, int32_t* logits = nullptr) {
    int32_t* last = nullptr;
    List::run(image, scratch, scratch + words_a, last);
    if (logits)
      for (uint32_t i = 0; i < num_classes; ++i) logits[i] = last[i];
    return argmax(last, num_classes);
  }
  static constexpr void describe(LayerDesc* out) { List::describe(out); }
};

// ---- the run-time model ------------------------------------------------------------------------

struct RuntimeNeeds {
  size_t words_a, words_b;
};

// Inputs a layer reads: a CNN block takes a square image of side n_in.
inline size_t layer_in_words(const LayerDesc& d) {
  return d.kind == LayerKind::Cnn ? size_t(d.n_in) * d.n_in : d.n_in;
}
inline size_t layer_out_words(const LayerDesc& d) {
  if (d.kind == LayerKind::Cnn) {
    const uint32_t s = cnn_output_side(d.n_in);
    return d.n_out * s * s;
  }
  return d.n_out;
}
inline size_t layer_work_words(const LayerDesc& d) {
  return d.kind == LayerKind::Cnn ? cnn_work_words(d.n_in) : 0;
}

// Scratch needed by a run-time layer list (same rule as Model::words_a / words_b).
inline RuntimeNeeds runtime_needs(const LayerDesc* layers, uint32_t n) {
  RuntimeNeeds r{0, 0};
  for (uint32_t l = 0; l < n; ++l) {
    size_t& mine = (l % 2 == 0) ? r.words_a : r.words_b;
    size_t& other = (l % 2 == 0) ? r.words_b : r.words_a;
    if (layer_out_words(layers[l]) > mine) mine = layer_out_words(layers[l]);
    if (layer_work_words(layers[l]) > other) other = layer_work_words(layers[l]);
  }
  return r;
}

// Runs a layer list; a, b: buffers of runtime_needs() words. Returns the class; the last
// layer's accumulators stay in the buffer *logits_out points to (if given).
// Returns UINT32_MAX for a layer the engine does not know.
inline uint32_t run_layers(const LayerDesc* layers, uint32_t n, const int8_t* image, int32_t* a, int32_t* b,
                           const int32_t** logits_out = nullptr) {
  const int8_t* x = image;
  int32_t* mine = a;
  int32_t* other = b;
  for (uint32_t l = 0; l < n; ++l) {
    const LayerDesc& d = layers[l];
    const bool known = visit_scheme(d.scheme, [&](auto s) {
      using S = decltype(s);
      if (d.kind == LayerKind::Cnn)
        cnn_layer<S>(static_cast<const uint8_t*>(d.weights), d.n_in, d.n_out, d.shift, x, other, mine);
      else
        dense_layer<S>(static_cast<const typename S::word_t*>(d.weights), d.rowsum, d.n_in, d.n_out, x, mine);
    });
    if (!known) return UINT32_MAX;
    const uint32_t outs = static_cast<uint32_t>(layer_out_words(d));
    if (l + 1 == n) {
      if (logits_out) *logits_out = mine;
      return argmax(mine, outs);
    }
    int8_t* act = reinterpret_cast<int8_t*>(mine);
    shiftnorm_relu(mine, outs, act);
    x = act;
    int32_t* t = mine;
    mine = other;
    other = t;
  }
  return UINT32_MAX;
}

}  // namespace bitnetmcu
