// Input helpers of SPEC §2: the 16x16 downscale + normalization, and the int8 input quantization
// the engine expects.
#include <bitnetmcu/preprocess.hpp>
#include <bitnetmcu/schemes.hpp>

#include <cmath>
#include <vector>

#include "bindings.hpp"

namespace bitnetmcu_py {
namespace {

// PIL's antialiased bilinear resize of 8-bit images (libImaging/Resample.c): per output pixel a
// triangle filter widened by the scale factor, coefficients in 22-bit fixed point, a horizontal
// then a vertical pass, each rounded and clipped to uint8. Bit-exact with Image.resize(BILINEAR).
struct Coeffs {
  std::vector<int> first, count;  // input window of each output pixel
  std::vector<int32_t> k;         // ksize fixed-point weights per output pixel
  int ksize = 0;
};
constexpr int kPrecisionBits = 32 - 8 - 2;

Coeffs pil_bilinear_coeffs(int in_size, int out_size) {
  const double scale = static_cast<double>(in_size) / out_size;
  const double filterscale = scale < 1.0 ? 1.0 : scale;
  const double support = 1.0 * filterscale;  // the bilinear filter's support is 1
  Coeffs c;
  c.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  c.first.resize(out_size);
  c.count.resize(out_size);
  c.k.assign(static_cast<size_t>(out_size) * c.ksize, 0);
  for (int xx = 0; xx < out_size; ++xx) {
    const double center = (xx + 0.5) * scale;
    int xmin = static_cast<int>(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int xmax = static_cast<int>(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    std::vector<double> w(xmax);
    double ww = 0.0;
    for (int x = 0; x < xmax; ++x) {
      const double t = std::fabs((x + xmin - center + 0.5) / filterscale);
      w[x] = t < 1.0 ? 1.0 - t : 0.0;
      ww += w[x];
    }
    for (int x = 0; x < xmax; ++x) {
      const double v = (ww != 0.0 ? w[x] / ww : w[x]) * (1 << kPrecisionBits);
      c.k[static_cast<size_t>(xx) * c.ksize + x] = static_cast<int32_t>(v < 0 ? v - 0.5 : v + 0.5);
    }
    c.first[xx] = xmin;
    c.count[xx] = xmax;
  }
  return c;
}

uint8_t clip8(int32_t v) {
  if (v >= (1 << kPrecisionBits << 8)) return 255;
  if (v <= 0) return 0;
  return static_cast<uint8_t>(v >> kPrecisionBits);
}

// One image: src h x w (row stride w) -> dst oh x ow.
void pil_resize(const uint8_t* src, int h, int w, int oh, int ow, const Coeffs& cx, const Coeffs& cy,
                std::vector<uint8_t>& tmp, uint8_t* dst) {
  tmp.resize(static_cast<size_t>(h) * ow);
  for (int y = 0; y < h; ++y)
    for (int xx = 0; xx < ow; ++xx) {
      int32_t ss = 1 << (kPrecisionBits - 1);
      const int32_t* k = &cx.k[static_cast<size_t>(xx) * cx.ksize];
      for (int x = 0; x < cx.count[xx]; ++x) ss += src[y * w + cx.first[xx] + x] * k[x];
      tmp[static_cast<size_t>(y) * ow + xx] = clip8(ss);
    }
  for (int yy = 0; yy < oh; ++yy)
    for (int xx = 0; xx < ow; ++xx) {
      int32_t ss = 1 << (kPrecisionBits - 1);
      const int32_t* k = &cy.k[static_cast<size_t>(yy) * cy.ksize];
      for (int y = 0; y < cy.count[yy]; ++y) ss += tmp[static_cast<size_t>(cy.first[yy] + y) * ow + xx] * k[y];
      dst[yy * ow + xx] = clip8(ss);
    }
}

// The triangle filter as a float32 [out][in] matrix (the engine's resize_weights), applied as
// R * img * R^T without intermediate rounding: what the C++ trainer and exporter do.
std::vector<float> resize_matrix(int in_size, int out_size) {
  std::vector<float> m(static_cast<size_t>(out_size) * in_size);
  bitnetmcu::resize_weights(static_cast<uint32_t>(in_size), static_cast<uint32_t>(out_size), m.data());
  return m;
}

// dst (oh x ow) = R_y * (src / 255) * R_x^T in float32.
void matrix_resize(const uint8_t* src, int h, int w, int oh, int ow, const std::vector<float>& ry,
                   const std::vector<float>& rx, std::vector<float>& tmp, float* dst) {
  tmp.assign(static_cast<size_t>(oh) * w, 0.0f);
  for (int yy = 0; yy < oh; ++yy)
    for (int y = 0; y < h; ++y) {
      const float k = ry[static_cast<size_t>(yy) * h + y];
      if (k == 0.0f) continue;
      for (int x = 0; x < w; ++x) tmp[static_cast<size_t>(yy) * w + x] += k * (src[y * w + x] / 255.0f);
    }
  for (int yy = 0; yy < oh; ++yy)
    for (int xx = 0; xx < ow; ++xx) {
      float sum = 0.0f;
      for (int x = 0; x < w; ++x) sum += tmp[static_cast<size_t>(yy) * w + x] * rx[static_cast<size_t>(xx) * w + x];
      dst[yy * ow + xx] = sum;
    }
}

// "index 5" for one image, "image 2, index 5" for a batch: where a bad value sits.
std::string value_position(bool single, py::ssize_t image, uint32_t index) {
  return (single ? "" : "image " + std::to_string(image) + ", ") + "index " + std::to_string(index);
}
std::string float_text(float v) { return py::str(py::float_(v)); }

py::array_t<float> preprocess(const py::handle& obj, int size, float mean, float std, bool pil_rounding) {
  py::array a = as_array(obj);
  require_dtype<uint8_t>(a, "preprocess", "uint8 images of shape (N, H, W) or (H, W)");
  if (a.ndim() != 2 && a.ndim() != 3)
    throw py::value_error("preprocess: expected uint8 images of shape (N, H, W) or (H, W), got shape " +
                          shape_text(a));
  if (size < 1) throw py::value_error("preprocess: size must be positive");
  if (!std::isfinite(mean) || !std::isfinite(std) || std == 0.0f)
    throw py::value_error("preprocess: mean " + float_text(mean) + ", std " + float_text(std) +
                          "; expected finite values and std != 0");
  const bool single = a.ndim() == 2;
  const py::ssize_t n = single ? 1 : a.shape(0);
  const int h = static_cast<int>(a.shape(a.ndim() - 2)), w = static_cast<int>(a.shape(a.ndim() - 1));
  py::array_t<float> out(single ? std::vector<py::ssize_t>{size * size} : std::vector<py::ssize_t>{n, size * size});
  const auto* src = static_cast<const uint8_t*>(a.data());
  float* dst = out.mutable_data();
  {
    py::gil_scoped_release release;
    const Coeffs cx = pil_bilinear_coeffs(w, size), cy = pil_bilinear_coeffs(h, size);
    const std::vector<float> rx = resize_matrix(w, size), ry = resize_matrix(h, size);
    std::vector<uint8_t> tmp8, small(static_cast<size_t>(size) * size);
    std::vector<float> tmpf;
    for (py::ssize_t i = 0; i < n; ++i, dst += size * size) {
      if (pil_rounding) {
        pil_resize(src + i * h * w, h, w, size, size, cx, cy, tmp8, small.data());
        for (int p = 0; p < size * size; ++p) dst[p] = small[p] / 255.0f;
      } else {
        matrix_resize(src + i * h * w, h, w, size, size, ry, rx, tmpf, dst);
      }
      for (int p = 0; p < size * size; ++p) dst[p] = (dst[p] - mean) / std;
    }
  }
  // A tiny std can still overflow float.
  const py::ssize_t per = static_cast<py::ssize_t>(size) * size;
  for (py::ssize_t i = 0; i < n; ++i) {
    const uint32_t bad = bitnetmcu::first_non_finite(out.data() + i * per, static_cast<uint32_t>(per));
    if (bad != per)
      throw py::value_error("preprocess: " + value_position(single, i, bad) + " is " +
                            float_text(out.data()[i * per + bad]) + " with std " + float_text(std) +
                            "; expected finite values (std too small)");
  }
  return out;
}

// SPEC §2 input quantization: the engine's quantize_input, image by image.
py::array_t<int8_t> quantize_input(const py::handle& obj) {
  py::array a = as_array(obj);
  if (a.dtype().kind() != 'f')
    throw py::type_error("quantize_input: expected float images (preprocessed, see bitnetmcu.preprocess) of shape "
                         "(N, 256) or (256,), got dtype " + std::string(py::str(a.dtype())));
  if (a.ndim() < 1) throw py::value_error("quantize_input: expected shape (N, 256) or (256,), got a scalar");
  auto x = py::array_t<float, py::array::c_style | py::array::forcecast>::ensure(a);
  const bool single = x.ndim() == 1;
  const py::ssize_t n = single ? 1 : x.shape(0);
  const py::ssize_t per = n ? x.size() / n : 0;
  py::array_t<int8_t> out(single ? std::vector<py::ssize_t>{per} : std::vector<py::ssize_t>{n, per});
  const float* in = x.data();
  int8_t* o = out.mutable_data();
  for (py::ssize_t i = 0; i < n; ++i, in += per, o += per) {
    const uint32_t bad = bitnetmcu::first_non_finite(in, static_cast<uint32_t>(per));
    if (bad != per)
      throw py::value_error("quantize_input: " + value_position(single, i, bad) + " is " + float_text(in[bad]) +
                            "; expected finite values (NaN/inf have no int8)");
    bitnetmcu::quantize_input(in, static_cast<uint32_t>(per), o);
  }
  return out;
}

// Feature-vector input quantization (config input_quantization global / per_feature): the
// engine's quantize_features, sample by sample, with the offsets and scales of a model header
// (kInputOffset, kInputScale) or checkpoint (input/offset, input/scale).
py::array_t<int8_t> quantize_features(const py::handle& obj, const py::handle& offset_obj, const py::handle& scale_obj) {
  py::array a = as_array(obj);
  if (a.dtype().kind() != 'f' && a.dtype().kind() != 'i' && a.dtype().kind() != 'u')
    throw py::type_error("quantize_features: expected raw numeric values of shape (N, F) or (F,), got dtype " +
                         std::string(py::str(a.dtype())));
  if (a.ndim() < 1 || a.ndim() > 2) throw py::value_error("quantize_features: expected shape (N, F) or (F,)");
  auto x = py::array_t<float, py::array::c_style | py::array::forcecast>::ensure(a);
  auto offset = py::array_t<float, py::array::c_style | py::array::forcecast>::ensure(as_array(offset_obj));
  auto scale = py::array_t<float, py::array::c_style | py::array::forcecast>::ensure(as_array(scale_obj));
  const bool single = x.ndim() == 1;
  const py::ssize_t n = single ? 1 : x.shape(0);
  const py::ssize_t per = single ? x.shape(0) : x.shape(1);
  if (offset.size() != scale.size() || (offset.size() != 1 && offset.size() != per))
    throw py::value_error("quantize_features: offset and scale must hold 1 (global) or " + std::to_string(per) +
                          " (per feature) values each, got " + std::to_string(offset.size()) + " and " +
                          std::to_string(scale.size()));
  py::array_t<int8_t> out(single ? std::vector<py::ssize_t>{per} : std::vector<py::ssize_t>{n, per});
  const float* in = x.data();
  int8_t* o = out.mutable_data();
  for (py::ssize_t i = 0; i < n; ++i, in += per, o += per)
    bitnetmcu::quantize_features(in, static_cast<uint32_t>(per), offset.data(), scale.data(),
                                 static_cast<uint32_t>(offset.size()), o);
  return out;
}

}  // namespace

void bind_input(py::module_& m) {
  m.def("quantize_features", &quantize_features, py::arg("x"), py::arg("offset"), py::arg("scale"),
        "Feature input quantization (bitnetmcu/preprocess.hpp quantize_features): raw values (N, F) -> int8,\n"
        "q = clamp(round_half_even((x - offset[k]) * scale[k]), -128, 127) in float32, k = the feature\n"
        "(per_feature: F offsets/scales) or 0 (global: one each). Offsets and scales: a model header's\n"
        "kInputOffset/kInputScale or a checkpoint's input/offset, input/scale.");
  m.def("preprocess", &preprocess, py::arg("images"), py::arg("size") = 16, py::arg("mean") = 0.1307f,
        py::arg("std") = 0.3081f, py::arg("pil_rounding") = false,
        "SPEC §2 preprocessing: uint8 images (N, H, W) -> float32 (N, size*size): antialiased bilinear\n"
        "downscale, /255, then (x - mean) / std. The downscale is PIL's triangle filter in float, as the\n"
        "trainer and exporter compute it; pil_rounding=True rounds like PIL's 8-bit resize instead\n"
        "(bit-exact with Image.resize((16, 16), BILINEAR)).");
  m.def("quantize_input", &quantize_input, py::arg("x"),
        "SPEC §2 input quantization: float images (N, 256) -> int8 (N, 256), per image\n"
        "s = 127 / max|x| (guard 1e-5), round half to even, clamp to [-128, 127].");
}

}  // namespace bitnetmcu_py
