// The host fast path: a model file's layers decoded once, at load time, through the engine's
// scheme traits into int16 pair layouts, and run with SIMD kernels (SSE2 on every x86-64, AVX2 or
// AVX-512 VNNI when the CPU has them, chosen at run time). Bit-exact with the engine's run_layers (the scalar
// path, which the firmware runs): tests/host checks it on random models and on the 10,000 MNIST
// test images of every shipped model.
//
// Host-only (heap, threads, x86 intrinsics), so it lives here and not in include/bitnetmcu/,
// which stays freestanding; it depends on the engine, never the reverse.
#pragma once
#include <bitnetmcu/model.hpp>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "fast_layers.hpp"

namespace bitnetmcu {
namespace host {

enum class Isa : uint8_t { Scalar, Sse2, Avx2, Avx512 };  // Avx512: F + BW + VNNI
bool isa_available(Isa isa);
Isa best_isa();  // the fastest this CPU runs
const char* isa_name(Isa isa);

class FastModel {
 public:
  // `layers` (and the weights they point to) must outlive the model: the row sums and the
  // scalar fallback read them. Isa::Scalar runs the engine's run_layers for every image.
  FastModel(const LayerDesc* layers, uint32_t n_layers, Isa isa = best_isa());

  Isa isa() const { return isa_; }
  uint32_t input_size() const { return input_size_; }
  uint32_t num_classes() const { return num_classes_; }

  // One thread's buffers.
  struct Workspace {
    std::vector<int32_t> engine_a, engine_b;  // run_layers' ping-pong buffers (fallback)
    std::vector<int32_t> acc, pair_values, plane_a, plane_b;
    std::vector<uint32_t> pair_index;
    std::vector<int8_t> act;
  };
  Workspace workspace() const;

  // Class of one image; the last layer's accumulators go to logits[num_classes] if given.
  uint32_t run(const int8_t* image, int32_t* logits, Workspace& ws) const;

  // images[n][input_size] -> classes[n] and/or logits[n][num_classes] (either may be null),
  // split over `threads` threads (0: all cores; small batches use fewer).
  void run_batch(const int8_t* images, size_t n, int64_t* classes, int32_t* logits, unsigned threads) const;

 private:
  struct Layer {
    LayerKind kind;
    uint32_t outputs;
    DenseData dense;
    CnnData cnn;
    std::vector<int16_t> w16;
    std::vector<int32_t> w32;
  };
  uint32_t run_engine(const int8_t* image, int32_t* logits, Workspace& ws) const;

  std::vector<LayerDesc> desc_;
  std::vector<Layer> layers_;
  const KernelSet* kernels_ = nullptr;
  Isa isa_;
  uint32_t input_size_ = 0, num_classes_ = 0;
  RuntimeNeeds needs_{};
  size_t max_acc_ = 0, max_pairs_ = 0, max_plane_ = 0, max_act_ = 0;
};

}  // namespace host
}  // namespace bitnetmcu
