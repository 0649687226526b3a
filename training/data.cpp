#include "data.hpp"

#include "bitnetmcu/preprocess.hpp"

#include "qat.hpp"

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <cmath>
#include <filesystem>
#include <stdexcept>

namespace bitnetmcu::train {
namespace fs = std::filesystem;
namespace F = torch::nn::functional;

// ---- IDX pairs ------------------------------------------------------------------------------

DataSplit load_idx_pair(const std::string& images_path, const std::string& labels_path) {
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
  DataSplit s;
  s.raw = torch::from_blob(const_cast<uint8_t*>(img.data.data()), {n, 1, 28, 28}, torch::kUInt8)
                .to(torch::kFloat32)
                .div_(255.0f);
  s.labels = torch::from_blob(const_cast<uint8_t*>(lab.data.data()), {n}, torch::kUInt8).to(torch::kInt64);
  s.images = downscale_normalize(s.raw);
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

DataSplit load_builtin_split(const Config& cfg, bool train) {
  std::vector<std::string> dirs;
  if (cfg.dataset == "MNIST") {
    dirs = {(fs::path(cfg.data_dir) / "mnist").string(), cfg.data_dir};
  } else {
    dirs = {(fs::path(cfg.data_dir) / "fashion-mnist").string(), "/usr/share/datasets/fashion-mnist"};
  }
  const std::string prefix = train ? "train" : "t10k";
  const std::string images = find_file(dirs, prefix + "-images-idx3-ubyte");
  const std::string labels = find_file(dirs, prefix + "-labels-idx1-ubyte");
  DataSplit s = load_idx_pair(images, labels);
  if (cfg.input_side != 16) s.images = downscale_normalize(s.raw, cfg.input_side);
  const int subset = train ? cfg.train_subset : cfg.test_subset;
  if (subset > 0 && subset < s.labels.size(0)) {
    s.images = s.images.narrow(0, 0, subset).clone();
    s.labels = s.labels.narrow(0, 0, subset).clone();
    s.raw = s.raw.narrow(0, 0, subset).clone();
  }
  return s;
}

// ---- resize, normalization, input quantization ----------------------------------------------

torch::Tensor resize_matrix(int64_t in_size, int64_t out_size) {
  torch::Tensor m = torch::empty({out_size, in_size}, torch::kFloat32);
  bitnetmcu::resize_weights(static_cast<uint32_t>(in_size), static_cast<uint32_t>(out_size), m.data_ptr<float>());
  return m;
}

torch::Tensor downscale_normalize(const torch::Tensor& images, int64_t side) {
  const int64_t n = images.size(0), h = images.size(2), w = images.size(3);
  const torch::Tensor rh = resize_matrix(h, side).to(images.device());
  const torch::Tensor rw = h == w ? rh : resize_matrix(w, side).to(images.device());
  // rows, then (after a transpose) columns: two large GEMMs instead of 2N small ones
  const torch::Tensor rows = matmul_nt(images.reshape({n * h, w}), rw).view({n, h, side});
  const torch::Tensor cols = matmul_nt(rows.transpose(1, 2).reshape({n * side, h}), rh).view({n, side, side});
  return cols.transpose(1, 2).reshape({n, 1, side, side}).sub_(kMnistMean).div_(kMnistStd);
}

InputQuantizer fit_input_quantizer(const std::string& mode, const torch::Tensor& raw) {
  InputQuantizer q;
  q.mode = mode;
  if (mode == "per_image") return q;
  const torch::Tensor x = raw.reshape({raw.size(0), -1}).to(torch::kFloat64);
  const torch::Tensor lo = mode == "global" ? x.min().reshape({1}) : std::get<0>(x.min(0));
  const torch::Tensor hi = mode == "global" ? x.max().reshape({1}) : std::get<0>(x.max(0));
  for (int64_t k = 0; k < lo.size(0); ++k) {
    const double a = lo[k].item<double>(), b = hi[k].item<double>(), half = (b - a) / 2;
    q.offset.push_back(static_cast<float>((a + b) / 2));
    // a constant feature carries no information: scale 1 maps it to 0
    q.scale.push_back(half > 0 ? static_cast<float>(127.0 / half) : 1.0f);
  }
  return q;
}

torch::Tensor quantize_features(const torch::Tensor& raw, const InputQuantizer& quantizer) {
  const torch::Tensor x = raw.reshape({raw.size(0), -1}).to(torch::kCPU, torch::kFloat32).contiguous();
  const int64_t n = x.size(0), d = x.size(1);
  const auto params = static_cast<uint32_t>(quantizer.offset.size());
  if (params != 1 && params != static_cast<uint32_t>(d))
    throw std::runtime_error("input quantizer has " + std::to_string(params) + " offsets for " + std::to_string(d) +
                             " features (expected 1 or " + std::to_string(d) + ")");
  torch::Tensor q = torch::empty(x.sizes(), torch::kInt8);
  const float* src = x.data_ptr<float>();
  int8_t* dst = q.data_ptr<int8_t>();
  for (int64_t i = 0; i < n; ++i)
    bitnetmcu::quantize_features(src + i * d, static_cast<uint32_t>(d), quantizer.offset.data(),
                                 quantizer.scale.data(), params, dst + i * d);
  return q;
}

torch::Tensor engine_input(const DataSplit& split, const InputQuantizer& quantizer) {
  if (quantizer.mode == "per_image" || quantizer.mode.empty()) return quantize_input(split.images);
  return quantize_features(split.raw, quantizer);
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
      elastic_probability_(cfg.elastictransformprobability), hflip_probability_(cfg.augmentation_hflip), nearest_(cfg.augmentation_interpolation == "nearest"),
      side_(cfg.input_side) {
  // torchvision ElasticTransform: kernel size int(8*sigma+1) made odd, sigma 4.
  const double sigma = 4.0;
  const int64_t ks = 33;
  torch::Tensor x = torch::arange(ks, torch::kFloat64) - (ks - 1) / 2.0;
  torch::Tensor k = torch::exp(-(x * x) / (2 * sigma * sigma));
  blur_kernel_ = (k / k.sum()).to(torch::kFloat32);
}

// No contraction of a*b + c into one rounding: the values must be the tensor expression's.
#if defined(__GNUC__) && !defined(__clang__)
__attribute__((optimize("fp-contract=off")))
#endif
torch::Tensor Augmenter::affine_grid(const torch::Tensor& c_in, const torch::Tensor& s_in, const torch::Tensor& tx_in,
                                     const torch::Tensor& ty_in, const torch::Tensor& mirror_in,
                                     const torch::Tensor& coord_in) {
#if defined(__clang__)
#pragma clang fp contract(off)
#endif
  const int64_t n = c_in.size(0), size = coord_in.size(0);
  const torch::Tensor c = c_in.contiguous(), s = s_in.contiguous(), tx = tx_in.contiguous(), ty = ty_in.contiguous(),
                      mirror = mirror_in.contiguous(), coord = coord_in.contiguous();
  torch::Tensor grid = torch::empty({n, size, size, 2}, c.options());
  const float *cp = c.data_ptr<float>(), *sp = s.data_ptr<float>(), *txp = tx.data_ptr<float>(),
              *typ = ty.data_ptr<float>(), *mp = mirror.data_ptr<float>(), *g = coord.data_ptr<float>();
  float* out = grid.data_ptr<float>();
  at::parallel_for(0, n, 64, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const float ci = cp[i], si = sp[i], nsi = -si, mi = mp[i];
      const float ctx = ci * txp[i], sty = si * typ[i], stx = si * txp[i], cty = ci * typ[i];
      const float ox = ctx + sty, oy = stx - cty;
      float* o = out + i * size * size * 2;
      for (int64_t y = 0; y < size; ++y) {
        const float gy = g[y], s_gy = si * gy, c_gy = ci * gy;
        for (int64_t x = 0; x < size; ++x, o += 2) {
          const float gx = g[x] * mi;
          const float c_gx = ci * gx, ns_gx = nsi * gx;
          const float a = c_gx + s_gy, b = ns_gx + c_gy;
          o[0] = a - ox;
          o[1] = b + oy;
        }
      }
    }
  });
  return grid;
}

torch::Tensor Augmenter::operator()(const torch::Tensor& raw, c10::optional<at::Generator> gen) const {
  const int64_t n = raw.size(0), size = raw.size(3);
  const auto opts = raw.options();
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
      const torch::Tensor k = blur_kernel_.to(raw.device());
      const int64_t pad = k.size(0) / 2;
      d = F::conv2d(F::pad(d, F::PadFuncOptions({pad, pad, 0, 0}).mode(torch::kReflect)), k.view({1, 1, 1, -1}));
      d = F::conv2d(F::pad(d, F::PadFuncOptions({0, 0, pad, pad}).mode(torch::kReflect)), k.view({1, 1, -1, 1}));
      d = d.view({m, 2, size, size}) * (40.0 / static_cast<double>(size));
      gx.index_add_(0, chosen, d.select(1, 0));
      gy.index_add_(0, chosen, d.select(1, 1));
    }
  }
  torch::Tensor mirror = torch::ones({n}, opts);
  if (hflip_probability_ > 0) {
    // Mirror: the output's column x samples the affine image at -x (pixel centres are symmetric
    // about 0 with align_corners=false, so this is an exact left-right flip). Drawn only when
    // enabled, so runs without it keep their random streams.
    mirror = 1 - 2 * (torch::rand({n}, gen, opts) < hflip_probability_).to(opts.dtype());
  }
  auto warp = [&](const torch::Tensor& images, const torch::Tensor& grid) {
    return downscale_normalize(
        F::grid_sample(images, grid,
                       F::GridSampleFuncOptions().padding_mode(torch::kZeros).align_corners(false).mode(
                           nearest_ ? F::GridSampleFuncOptions::mode_t(torch::kNearest)
                                    : F::GridSampleFuncOptions::mode_t(torch::kBilinear))),
        side_);
  };
  if (elastic_probability_ > 0 || !raw.device().is_cpu() || raw.scalar_type() != torch::kFloat32) {
    auto per_image = [n](const torch::Tensor& v) { return v.view({n, 1, 1}); };
    gx = gx * per_image(mirror);
    return warp(raw, torch::stack({per_image(c) * gx + per_image(s) * gy - per_image(c * tx + s * ty),
                                   per_image(-s) * gx + per_image(c) * gy + per_image(s * tx - c * ty)},
                                  3));
  }
  // In parts of 2048 images, the random numbers drawn for all of them above: a part's grid
  // (12.8 MB) and images stay under glibc's 32 MB mmap threshold and reuse the heap, where the
  // whole chunk's 51 MB grid was a fresh mmap whose page faults took 5/6 of the time (one thread,
  // 8192 images: 159 ms -> 22 ms). Images are independent and the downscale's matrix products
  // give each row the same value in any batch, so the result is the same.
  constexpr int64_t kPart = 2048;
  std::vector<torch::Tensor> parts;
  for (int64_t i = 0; i < n; i += kPart) {
    const int64_t m = std::min(kPart, n - i);
    parts.push_back(warp(raw.narrow(0, i, m), affine_grid(c.narrow(0, i, m), s.narrow(0, i, m), tx.narrow(0, i, m),
                                                          ty.narrow(0, i, m), mirror.narrow(0, i, m), coord)));
  }
  return parts.size() == 1 ? parts[0] : torch::cat(parts);
}

}  // namespace bitnetmcu::train
