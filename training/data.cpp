#include "data.hpp"

#include "bitnetmcu/preprocess.hpp"

#include "qat.hpp"

#include <torch/torch.h>

#include <cmath>
#include <filesystem>
#include <stdexcept>

namespace bitnetmcu::train {
namespace fs = std::filesystem;
namespace F = torch::nn::functional;

// ---- IDX pairs ------------------------------------------------------------------------------

MnistSplit load_idx_pair(const std::string& images_path, const std::string& labels_path) {
  const IdxArray img = read_idx(images_path);
  const IdxArray lab = read_idx(labels_path);
  if (img.dims.size() != 3 || img.dims[1] != 28 || img.dims[2] != 28)
    throw std::runtime_error(images_path + ": expected images of 28x28 (3 dimensions N,28,28)");
  if (lab.dims.size() != 1)
    throw std::runtime_error(labels_path + ": expected a label file (1 dimension)");
  if (img.dims[0] != lab.dims[0])
    throw std::runtime_error(images_path + " holds " + std::to_string(img.dims[0]) + " images but " +
                             labels_path + " holds " + std::to_string(lab.dims[0]) + " labels");
  for (uint8_t l : lab.data)
    if (l > 9) throw std::runtime_error(labels_path + ": label " + std::to_string(l) + " outside 0..9");
  const int64_t n = img.dims[0];
  MnistSplit s;
  s.raw28 = torch::from_blob(const_cast<uint8_t*>(img.data.data()), {n, 1, 28, 28}, torch::kUInt8)
                .to(torch::kFloat32)
                .div_(255.0f);
  s.labels = torch::from_blob(const_cast<uint8_t*>(lab.data.data()), {n}, torch::kUInt8).to(torch::kInt64);
  s.images = downscale_normalize(s.raw28);
  return s;
}

namespace {
// Folder and file names of a dataset; Fashion-MNIST ships gzip-compressed.
std::string find_file(const std::vector<std::string>& dirs, const std::string& stem) {
  for (const auto& d : dirs)
    for (const char* ext : {"", ".gz"})
      if (fs::exists(fs::path(d) / (stem + ext))) return (fs::path(d) / (stem + ext)).string();
  std::string tried;
  for (const auto& d : dirs) tried += " " + (fs::path(d) / stem).string() + "[.gz]";
  throw std::runtime_error("data file " + stem + " not found; looked for" + tried +
                           " (run scripts/setup.sh, or set data_dir)");
}
}  // namespace

MnistSplit load_split(const Config& cfg, bool train) {
  std::vector<std::string> dirs;
  if (cfg.dataset == "MNIST") {
    dirs = {(fs::path(cfg.data_dir) / "mnist").string(), cfg.data_dir};
  } else {
    dirs = {(fs::path(cfg.data_dir) / "fashion-mnist").string(), "/usr/share/datasets/fashion-mnist"};
  }
  const std::string prefix = train ? "train" : "t10k";
  const std::string images = find_file(dirs, prefix + "-images-idx3-ubyte");
  const std::string labels = find_file(dirs, prefix + "-labels-idx1-ubyte");
  MnistSplit s = load_idx_pair(images, labels);
  const int subset = train ? cfg.train_subset : cfg.test_subset;
  if (subset > 0 && subset < s.labels.size(0)) {
    s.images = s.images.narrow(0, 0, subset).clone();
    s.labels = s.labels.narrow(0, 0, subset).clone();
    s.raw28 = s.raw28.narrow(0, 0, subset).clone();
  }
  return s;
}

// ---- resize, normalization, input quantization ----------------------------------------------

torch::Tensor resize_matrix(int64_t in_size, int64_t out_size) {
  torch::Tensor m = torch::empty({out_size, in_size}, torch::kFloat32);
  bitnetmcu::resize_weights(static_cast<uint32_t>(in_size), static_cast<uint32_t>(out_size), m.data_ptr<float>());
  return m;
}

torch::Tensor downscale_normalize(const torch::Tensor& images28) {
  static const torch::Tensor r = resize_matrix(28, 16);
  const torch::Tensor rr = r.to(images28.device());
  const int64_t n = images28.size(0);
  // rows, then (after a transpose) columns: two large GEMMs instead of 2N small ones
  const torch::Tensor rows = matmul_nt(images28.reshape({n * 28, 28}), rr).view({n, 28, 16});
  const torch::Tensor cols = matmul_nt(rows.transpose(1, 2).reshape({n * 16, 28}), rr).view({n, 16, 16});
  return cols.transpose(1, 2).reshape({n, 1, 16, 16}).sub_(kMnistMean).div_(kMnistStd);
}

torch::Tensor quantize_input(const torch::Tensor& images) {
  // The engine's definition, image by image (what a device would run).
  const torch::Tensor x = images.reshape({images.size(0), -1}).to(torch::kCPU, torch::kFloat32).contiguous();
  torch::Tensor q = torch::empty(x.sizes(), torch::kInt8);
  const int64_t n = x.size(0), d = x.size(1);
  const float* src = x.data_ptr<float>();
  int8_t* dst = q.data_ptr<int8_t>();
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t bad = bitnetmcu::first_non_finite(src + i * d, static_cast<uint32_t>(d));
    if (bad != d)
      throw std::invalid_argument("quantize_input: image " + std::to_string(i) + ", value " + std::to_string(bad) +
                                  " is " + std::to_string(src[i * d + bad]) + "; expected finite values");
    bitnetmcu::quantize_input(src + i * d, static_cast<uint32_t>(d), dst + i * d);
  }
  return q;
}

// ---- augmentation ---------------------------------------------------------------------------

Augmenter::Augmenter(const Config& cfg)
    : rotation1_(cfg.rotation1), rotation2_(cfg.rotation2),
      elastic_probability_(cfg.elastictransformprobability), nearest_(cfg.augmentation_interpolation == "nearest") {
  // torchvision ElasticTransform: kernel size int(8*sigma+1) made odd, sigma 4.
  const double sigma = 4.0;
  const int64_t ks = 33;
  torch::Tensor x = torch::arange(ks, torch::kFloat64) - (ks - 1) / 2.0;
  torch::Tensor k = torch::exp(-(x * x) / (2 * sigma * sigma));
  blur_kernel_ = (k / k.sum()).to(torch::kFloat32);
}

torch::Tensor Augmenter::operator()(const torch::Tensor& raw28, c10::optional<at::Generator> gen) const {
  const int64_t n = raw28.size(0), size = raw28.size(3);
  const auto opts = raw28.options();
  constexpr double kDegToRad = M_PI / 180.0;
  // rotation1 then the affine map (both about the centre): source = R(-(a1+a2)) (p - t) / s.
  const torch::Tensor angle = ((torch::rand({n}, gen, opts) * 2 - 1) * rotation1_ +
                               (torch::rand({n}, gen, opts) * 2 - 1) * rotation2_) * kDegToRad;
  // torchvision draws whole-pixel translations up to 10 % of the size.
  const double max_shift = 0.1 * static_cast<double>(size);
  const torch::Tensor shift_px = torch::round((torch::rand({n, 2}, gen, opts) * 2 - 1) * max_shift);
  const torch::Tensor t = shift_px * (2.0 / static_cast<double>(size));  // normalized units
  const torch::Tensor inv_scale = 1.0 / (0.9 + 0.2 * torch::rand({n}, gen, opts));
  const torch::Tensor c = torch::cos(angle) * inv_scale, s = torch::sin(angle) * inv_scale;
  // theta rows: [c, s, -(c tx + s ty)], [-s, c, -(-s tx + c ty)]
  const torch::Tensor tx = t.select(1, 0), ty = t.select(1, 1);
  // Sampling grid [n,H,W,2] = theta applied to the pixel centres (align_corners=false), done
  // elementwise: affine_grid would run n tiny GEMMs.
  const torch::Tensor coord = (torch::arange(size, opts) * 2 + 1) / static_cast<double>(size) - 1;
  torch::Tensor gx = coord.view({1, 1, size}).expand({n, size, size});
  torch::Tensor gy = coord.view({1, size, 1}).expand({n, size, size});
  if (elastic_probability_ > 0) {
    // Elastic: result(p) = affine_image(p + d(p)), d a smoothed uniform field * alpha / size.
    gx = gx.clone(), gy = gy.clone();
    const torch::Tensor chosen = (torch::rand({n}, gen, opts) < elastic_probability_).nonzero().squeeze(1);
    if (chosen.numel() > 0) {
      const int64_t m = chosen.size(0);
      torch::Tensor d = torch::rand({m * 2, 1, size, size}, gen, opts) * 2 - 1;
      const torch::Tensor k = blur_kernel_.to(raw28.device());
      const int64_t pad = k.size(0) / 2;
      d = F::conv2d(F::pad(d, F::PadFuncOptions({pad, pad, 0, 0}).mode(torch::kReflect)), k.view({1, 1, 1, -1}));
      d = F::conv2d(F::pad(d, F::PadFuncOptions({0, 0, pad, pad}).mode(torch::kReflect)), k.view({1, 1, -1, 1}));
      d = d.view({m, 2, size, size}) * (40.0 / static_cast<double>(size));
      gx.index_add_(0, chosen, d.select(1, 0));
      gy.index_add_(0, chosen, d.select(1, 1));
    }
  }
  auto per_image = [n](const torch::Tensor& t) { return t.view({n, 1, 1}); };
  const torch::Tensor grid = torch::stack({per_image(c) * gx + per_image(s) * gy - per_image(c * tx + s * ty),
                                           per_image(-s) * gx + per_image(c) * gy + per_image(s * tx - c * ty)},
                                          3);
  const torch::Tensor warped = F::grid_sample(
      raw28, grid,
      F::GridSampleFuncOptions().padding_mode(torch::kZeros).align_corners(false).mode(
          nearest_ ? F::GridSampleFuncOptions::mode_t(torch::kNearest) : F::GridSampleFuncOptions::mode_t(torch::kBilinear)));
  return downscale_normalize(warped);
}

}  // namespace bitnetmcu::train
