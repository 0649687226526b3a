// bitnetmcu.schemes: the engine's weight-scheme traits (schemes.hpp, layout.hpp) on numpy arrays.
// Every method forwards to the traits; nothing about a scheme is restated here.
#include <bitnetmcu/layout.hpp>
#include <bitnetmcu/level_table.hpp>
#include <bitnetmcu/schemes.hpp>

#include <cstring>
#include <vector>

#include "bindings.hpp"

namespace bitnetmcu_py {
namespace bn = bitnetmcu;

namespace {

template <class F>
void visit(bn::SchemeId id, F&& f) {
  bn::visit_scheme(id, f);
}

template <class S>
constexpr uint32_t num_codes() {
  return S::code_bits ? (1u << S::code_bits) : 3u;  // Ternary: 3 trits
}

struct Scheme {
  bn::SchemeId id;

  std::string name() const { return bn::scheme_name(id); }

  // Integer array-like -> uint8 codes, checked against the scheme's code range.
  py::array_t<uint8_t> checked_codes(const py::handle& obj) const {
    py::array a = as_array(obj);
    if (a.dtype().kind() != 'u' && a.dtype().kind() != 'i')
      throw py::type_error("codes: expected an integer array (uint8 codes), got dtype " +
                           std::string(py::str(a.dtype())));
    auto wide = py::array_t<int64_t, py::array::c_style | py::array::forcecast>::ensure(a);
    uint32_t limit = 0;
    visit(id, [&](auto s) { limit = num_codes<decltype(s)>(); });
    py::array_t<uint8_t> out(std::vector<py::ssize_t>(a.shape(), a.shape() + a.ndim()));
    const int64_t* in = wide.data();
    uint8_t* o = out.mutable_data();
    for (py::ssize_t i = 0; i < wide.size(); ++i) {
      if (in[i] < 0 || in[i] >= limit)
        throw py::value_error("codes: " + name() + " codes lie in 0.." + std::to_string(limit - 1) + ", got " +
                              std::to_string(in[i]));
      o[i] = static_cast<uint8_t>(in[i]);
    }
    return out;
  }

  py::array_t<uint8_t> encode(py::array_t<float, py::array::c_style | py::array::forcecast> v) const {
    py::array_t<uint8_t> out(std::vector<py::ssize_t>(v.shape(), v.shape() + v.ndim()));
    const float* in = v.data();
    uint8_t* o = out.mutable_data();
    const py::ssize_t n = v.size();
    visit(id, [&](auto s) {
      using S = decltype(s);
      for (py::ssize_t i = 0; i < n; ++i) o[i] = S::encode(in[i]);
    });
    return out;
  }

  // value(encode(v)) in one pass through the scheme's level table (level_table.hpp, exact to
  // encode/value): the quantized weights in scaled units that PyTorch QAT uses.
  py::array_t<float> quantize(py::array_t<float, py::array::c_style | py::array::forcecast> v) const {
    static const std::vector<bn::LevelTable> tables = [] {
      std::vector<bn::LevelTable> t;
      for (int i = 0; i < bn::kNumSchemes; ++i) t.push_back(bn::level_table(static_cast<bn::SchemeId>(i)));
      return t;
    }();
    const bn::LevelTable& table = tables.at(static_cast<size_t>(id));
    py::array_t<float> out(std::vector<py::ssize_t>(v.shape(), v.shape() + v.ndim()));
    const float* in = v.data();
    float* o = out.mutable_data();
    for (py::ssize_t i = 0, n = v.size(); i < n; ++i) o[i] = table.level(in[i]);
    return out;
  }

  py::array_t<int32_t> decode(const py::handle& obj) const {
    auto codes = checked_codes(obj);
    py::array_t<int32_t> out(std::vector<py::ssize_t>(codes.shape(), codes.shape() + codes.ndim()));
    visit(id, [&](auto s) {
      for (py::ssize_t i = 0; i < codes.size(); ++i) out.mutable_data()[i] = decltype(s)::decode(codes.data()[i]);
    });
    return out;
  }

  py::array_t<float> value(const py::handle& obj) const {
    auto codes = checked_codes(obj);
    py::array_t<float> out(std::vector<py::ssize_t>(codes.shape(), codes.shape() + codes.ndim()));
    visit(id, [&](auto s) {
      for (py::ssize_t i = 0; i < codes.size(); ++i) out.mutable_data()[i] = decltype(s)::value(codes.data()[i]);
    });
    return out;
  }

  size_t row_words(size_t n) const {
    size_t w = 0;
    visit(id, [&](auto s) { w = bn::row_words<decltype(s)>(n); });
    return w;
  }

  // codes (n,) or (rows, n) -> words (row_words(n),) or (rows, row_words(n)), SPEC §5 row layout.
  py::array pack(const py::handle& obj) const {
    auto codes = checked_codes(obj);
    if (codes.ndim() != 1 && codes.ndim() != 2)
      throw py::value_error("pack: expected codes of shape (n,) or (rows, n), got " + shape_text(codes));
    const size_t rows = codes.ndim() == 2 ? codes.shape(0) : 1;
    const size_t n = codes.shape(codes.ndim() - 1);
    const size_t nw = row_words(n);
    py::array out;
    visit(id, [&](auto s) {
      using S = decltype(s);
      using W = typename S::word_t;
      std::vector<py::ssize_t> shape{static_cast<py::ssize_t>(nw)};
      if (codes.ndim() == 2) shape.insert(shape.begin(), static_cast<py::ssize_t>(rows));
      py::array_t<W> words(shape);
      for (size_t r = 0; r < rows; ++r) bn::pack_row<S>(codes.data() + r * n, n, words.mutable_data() + r * nw);
      out = words;
    });
    return out;
  }

  // words (row_words(n),) or (rows, row_words(n)) -> codes (n,) or (rows, n).
  py::array_t<uint8_t> unpack(const py::handle& obj, size_t n) const {
    py::array a = as_array(obj);
    py::array_t<uint8_t> out;
    visit(id, [&](auto s) {
      using S = decltype(s);
      using W = typename S::word_t;
      const std::string expected = std::string(py::str(py::dtype::of<W>())) + " words of shape (" +
                                   std::to_string(row_words(n)) + ",) or (rows, " + std::to_string(row_words(n)) +
                                   ")";
      require_dtype<W>(a, "unpack", expected);
      if ((a.ndim() != 1 && a.ndim() != 2) || static_cast<size_t>(a.shape(a.ndim() - 1)) != row_words(n))
        throw py::value_error("unpack: expected " + expected + " for n=" + std::to_string(n) + ", got shape " +
                              shape_text(a));
      const size_t rows = a.ndim() == 2 ? a.shape(0) : 1;
      std::vector<py::ssize_t> shape{static_cast<py::ssize_t>(n)};
      if (a.ndim() == 2) shape.insert(shape.begin(), static_cast<py::ssize_t>(rows));
      out = py::array_t<uint8_t>(shape);
      const W* w = static_cast<const W*>(a.data());
      for (size_t r = 0; r < rows; ++r) bn::unpack_row<S>(w + r * row_words(n), n, out.mutable_data() + r * n);
    });
    return out;
  }

  // codes (n_out, n_in) -> the flash layout of the fast kernels (layout.hpp), flat words.
  py::array pack_columns(const py::handle& obj) const {
    auto codes = checked_codes(obj);
    if (codes.ndim() != 2)
      throw py::value_error("pack_columns: expected codes of shape (n_out, n_in), got " + shape_text(codes));
    const size_t n_out = codes.shape(0), n_in = codes.shape(1);
    py::array out;
    visit(id, [&](auto s) {
      using S = decltype(s);
      py::array_t<typename S::word_t> words(static_cast<py::ssize_t>(bn::dense_weight_words<S>(n_in, n_out)));
      std::vector<uint8_t> scratch(n_out);
      bn::pack_columns<S>(codes.data(), n_out, n_in, scratch.data(), words.mutable_data());
      out = words;
    });
    return out;
  }
};

}  // namespace

void bind_schemes(py::module_& m) {
  py::class_<Scheme>(m, "Scheme",
                     "One weight quantization scheme of the engine (SPEC §4-§5). Arrays in, arrays out:\n"
                     "encode(scaled float) -> uint8 code, decode(code) -> integer weight used by the kernels,\n"
                     "value(code) -> float weight in scaled units, pack/unpack rows of codes into words.")
      .def_property_readonly("name", &Scheme::name)
      .def_property_readonly("id", [](const Scheme& s) { return static_cast<int>(s.id); })
      .def_property_readonly("bits_per_weight",
                             [](const Scheme& s) {
                               float b = 0;
                               visit(s.id, [&](auto t) { b = decltype(t)::bits_per_weight; });
                               return b;
                             })
      .def_property_readonly("clip_numerator",
                             [](const Scheme& s) {
                               float c = 0;
                               visit(s.id, [&](auto t) { c = decltype(t)::clip_numerator; });
                               return c;
                             },
                             "k = clip_numerator / s for the Clip scale rule")
      .def_property_readonly("scale_rule",
                             [](const Scheme& s) {
                               bn::ScaleRule r{};
                               visit(s.id, [&](auto t) { r = decltype(t)::scale_rule; });
                               return r == bn::ScaleRule::MeanCentered ? "mean_centered"
                                      : r == bn::ScaleRule::InvMeanAbs ? "inv_mean_abs"
                                                                       : "clip";
                             },
                             "how training scales w before encode: 'mean_centered' (w - mean w), "
                             "'inv_mean_abs' (w / mean|w|), 'clip' (w * clip_numerator / s)")
      .def_property_readonly("has_zero",
                             [](const Scheme& s) {
                               bool z = false;
                               visit(s.id, [&](auto t) { z = decltype(t)::has_zero; });
                               return z;
                             })
      .def_property_readonly("pad_code",
                             [](const Scheme& s) {
                               int c = 0;
                               visit(s.id, [&](auto t) { c = decltype(t)::pad_code; });
                               return c;
                             })
      .def_property_readonly("num_codes",
                             [](const Scheme& s) {
                               uint32_t n = 0;
                               visit(s.id, [&](auto t) { n = num_codes<decltype(t)>(); });
                               return n;
                             })
      .def_property_readonly("codes_per_word",
                             [](const Scheme& s) {
                               unsigned n = 0;
                               visit(s.id, [&](auto t) { n = decltype(t)::codes_per_word; });
                               return n;
                             })
      .def_property_readonly("word_dtype",
                             [](const Scheme& s) {
                               py::dtype d = py::dtype::of<uint32_t>();
                               visit(s.id, [&](auto t) { d = py::dtype::of<typename decltype(t)::word_t>(); });
                               return d;
                             })
      .def_property_readonly("max_abs",
                             [](const Scheme& s) {
                               int32_t v = 0;
                               visit(s.id, [&](auto t) { v = decltype(t)::max_abs; });
                               return v;
                             })
      .def("encode", &Scheme::encode, py::arg("scaled"),
           "Codes (uint8, same shape) of already scaled float weights (cast to float32).")
      .def("quantize", &Scheme::quantize, py::arg("scaled"),
           "value(encode(v)) (float32, same shape): the quantized weights, in scaled units, of already\n"
           "scaled float weights (cast to float32), through the scheme's exact level table; what QAT uses.")
      .def("decode", &Scheme::decode, py::arg("codes"), "Integer weights (int32) the kernels use for the codes.")
      .def("value", &Scheme::value, py::arg("codes"), "Float weights (float32, scaled units) of the codes.")
      .def("row_words", &Scheme::row_words, py::arg("n"), "Words holding one packed row of n codes.")
      .def("pack", &Scheme::pack, py::arg("codes"),
           "Pack codes (n,) or (rows, n) row by row, first code in the most significant bits (SPEC §5).")
      .def("unpack", &Scheme::unpack, py::arg("words"), py::arg("n"), "Inverse of pack for rows of n codes.")
      .def("pack_columns", &Scheme::pack_columns, py::arg("codes"),
           "Codes (n_out, n_in) in the engine's flash layout (column-major words, layout.hpp).")
      .def("__repr__", [](const Scheme& s) { return "<bitnetmcu scheme " + s.name() + ">"; });

  py::dict schemes;
  for (int i = 0; i < bn::kNumSchemes; ++i) {
    const Scheme s{static_cast<bn::SchemeId>(i)};
    schemes[py::str(s.name())] = py::cast(s);
  }
  m.attr("schemes") = schemes;
}

}  // namespace bitnetmcu_py
