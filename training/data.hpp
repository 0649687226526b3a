// Training data (SPEC §2 and your own): MNIST-format IDX files (raw or .gz), generic IDX, NumPy
// .npy/.npz and CSV readers (dataset.cpp), the seeded stratified split, the antialiased image
// resize, normalization, batched augmentation, and the int8 input quantization of the engine.
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

// One split of a dataset.
struct DataSplit {
  // The network's float input: images [N,1,S,S] resized and normalized (SPEC §2), or feature
  // vectors [N,F] already input-quantized (integers held as float).
  torch::Tensor images;
  torch::Tensor labels;  // int64 [N]
  // Images: [N,1,H,W] in [0,1], the source of augmented copies. Vectors: [N,F] raw values.
  torch::Tensor raw;
};

// The int8 input quantization of a dataset (config input_quantization, bitnetmcu/preprocess.hpp).
struct InputQuantizer {
  std::string mode;                 // per_image | global | per_feature
  std::vector<float> offset, scale;  // global: one each; per_feature: one per feature; per_image: none
};

// What the data says about itself; the trainer records it in the config (resolve_data_shape).
struct DataInfo {
  bool images = true;      // image data (resized, augmentable) or feature vectors
  int64_t inputs = 0;      // network inputs: side^2 or the feature count
  int64_t num_classes = 0;
  std::vector<std::string> class_names;
  InputQuantizer quantizer;
  std::string description;  // e.g. "16x16 image, int8 per image (SPEC §2)" (model header)
};

struct Dataset {
  DataSplit train, test;
  DataInfo info;
};

// Both splits of cfg's dataset (cfg.train_subset / test_subset applied; the input quantizer is
// fitted on the training split). Throws std::runtime_error naming the file, row/column or
// index and what was expected for bad data.
Dataset load_dataset(const Config& cfg);
// MNIST / Fashion-MNIST from cfg.data_dir (or Debian's dataset-fashion-mnist).
DataSplit load_builtin_split(const Config& cfg, bool train);
// The training or test split of cfg.dataset.
DataSplit load_split(const Config& cfg, bool train);
// Records the data's input count, class count and names, and resolved input_quantization in
// cfg; throws when cfg already names different ones (e.g. a resumed run on other data).
void resolve_data_shape(Config& cfg, const DataInfo& info);
// The class names of cfg (class_names, or "0".."K-1").
std::vector<std::string> class_names_of(const Config& cfg);
// The engine's int8 input [N, inputs] of a split: SPEC §2 per image, or the feature values.
torch::Tensor engine_input(const DataSplit& split, const InputQuantizer& quantizer);
// Loads an images/labels pair of IDX files of 28x28 images and checks that they belong together.
DataSplit load_idx_pair(const std::string& images_path, const std::string& labels_path);

// [out, in] matrix of PIL's antialiased bilinear resize (triangle filter widened by in/out).
torch::Tensor resize_matrix(int64_t in_size, int64_t out_size);
// [N,1,H,W] in [0,1] -> [N,1,side,side], resized and normalized with the MNIST mean/std.
torch::Tensor downscale_normalize(const torch::Tensor& images, int64_t side = 16);

// SPEC §2: per image s = 127 / max|x| (guard 1e-5), round half even, clamp -> int8 [N,256].
torch::Tensor quantize_input(const torch::Tensor& images);
// Fits global / per_feature offsets and scales to the training vectors raw [N,F] (preprocess.hpp).
InputQuantizer fit_input_quantizer(const std::string& mode, const torch::Tensor& raw);
// raw [N,F] float -> int8 [N,F] with bitnetmcu::quantize_features, sample by sample.
torch::Tensor quantize_features(const torch::Tensor& raw, const InputQuantizer& quantizer);

// The quantizer in a checkpoint: entries "input/offset" and "input/scale" (float32 [1] or [F];
// absent for per_image). load_input_quantizer takes the mode from cfg.input_quantization.
struct Checkpoint;
void save_input_quantizer(Checkpoint& ckpt, const InputQuantizer& quantizer);
InputQuantizer load_input_quantizer(const Checkpoint& ckpt, const Config& cfg);

// Random augmentation of SPEC §2, all images of a batch at once: one grid_sample of the
// combined rotation1 + affine map, plus an elastic displacement for a random subset.
// Random numbers come from `generator` (torch's global one when undefined), so that an epoch's
// augmented copy can be made on a worker thread, reproducibly.
class Augmenter {
 public:
  // The sampling grid [N,H,W,2] of the affine maps (per image: cos and sin over the scale c, s,
  // the normalized shift tx, ty, and mirror = 1 or -1 for a left-right flip) at the pixel
  // centres `coord` [W] (align_corners=false): x' = c (m x) + s y - (c tx + s ty),
  // y' = -s (m x) + c y + (s tx - c ty). One loop over the grid on CPU, with the float operations
  // of the tensor expression in its order (the same values), and no intermediate tensors.
  static torch::Tensor affine_grid(const torch::Tensor& c, const torch::Tensor& s, const torch::Tensor& tx,
                                   const torch::Tensor& ty, const torch::Tensor& mirror, const torch::Tensor& coord);

  explicit Augmenter(const Config& cfg);
  // [N,1,H,H] in [0,1] -> augmented, resized, normalized [N,1,side,side].
  torch::Tensor operator()(const torch::Tensor& raw, c10::optional<at::Generator> generator = c10::nullopt) const;

 private:
  double rotation1_, rotation2_, elastic_probability_, hflip_probability_;
  bool nearest_;
  int64_t side_;
  torch::Tensor blur_kernel_;  // 1-D Gaussian, sigma 4
};

}  // namespace bitnetmcu::train
