// MNIST-format data (SPEC §2): IDX reader (raw or .gz), antialiased 16x16 downscale,
// normalization, batched augmentation and the int8 input quantization of the engine.
#pragma once
#include "bitnetmcu/preprocess.hpp"
#include "config.hpp"
#include "idx.hpp"

#include <torch/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace bitnetmcu::train {

using bitnetmcu::kMnistMean;  // bitnetmcu/preprocess.hpp
using bitnetmcu::kMnistStd;

struct MnistSplit {
  torch::Tensor images;  // [N,1,16,16] float, downscaled and normalized
  torch::Tensor labels;  // int64 [N]
  torch::Tensor raw28;   // [N,1,28,28] float in [0,1], the source of augmented copies
};
// The training or test split of cfg.dataset (cfg.train_subset / test_subset applied).
MnistSplit load_split(const Config& cfg, bool train);
// Loads an images/labels pair of IDX files and checks that they belong together.
MnistSplit load_idx_pair(const std::string& images_path, const std::string& labels_path);

// [out, in] matrix of PIL's antialiased bilinear resize (triangle filter widened by in/out).
torch::Tensor resize_matrix(int64_t in_size, int64_t out_size);
// [N,1,28,28] in [0,1] -> [N,1,16,16], downscaled and normalized with the MNIST mean/std.
torch::Tensor downscale_normalize(const torch::Tensor& images28);

// SPEC §2: per image s = 127 / max|x| (guard 1e-5), round half even, clamp -> int8 [N,256].
torch::Tensor quantize_input(const torch::Tensor& images);

// Random augmentation of SPEC §2, all images of a batch at once: one grid_sample of the
// combined rotation1 + affine map, plus an elastic displacement for a random subset.
// Random numbers come from `generator` (torch's global one when undefined), so that an epoch's
// augmented copy can be made on a worker thread, reproducibly.
class Augmenter {
 public:
  explicit Augmenter(const Config& cfg);
  // [N,1,28,28] in [0,1] -> augmented, downscaled, normalized [N,1,16,16].
  torch::Tensor operator()(const torch::Tensor& raw28, c10::optional<at::Generator> generator = c10::nullopt) const;

 private:
  double rotation1_, rotation2_, elastic_probability_;
  bool nearest_;
  torch::Tensor blur_kernel_;  // 1-D Gaussian, sigma 4
};

}  // namespace bitnetmcu::train
