// LibTorch side of the exporter's verification: an integer emulation that shares nothing with
// the engine but the decoded weights (emulate.cpp). Library bitnetmcu_exporter.
#pragma once
#include <torch/types.h>

#include "exporter.hpp"

namespace bitnetmcu::exporter {

struct Emulation {
  torch::Tensor logits;       // int64 [N, classes]: last layer's accumulators
  torch::Tensor predictions;  // int64 [N]
};

// SPEC §6 integer inference with tensor ops. images: int8 [N, inputs] (a CNN: [N, side^2]).
Emulation emulate_integer_model(const std::vector<QuantizedTensor>& tensors, const torch::Tensor& images,
                                uint32_t cnn_shift);

}  // namespace bitnetmcu::exporter
