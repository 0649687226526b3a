// bitnetmcu.Model: a model file (.bnm, model_file.hpp) parsed by the engine and run on numpy
// batches by the host fast path (host/fast_model.hpp: SIMD, bit-exact with the engine's
// run_layers), the GIL released and the batch split over threads.
#include <bitnetmcu/layout.hpp>
#include <bitnetmcu/model_file.hpp>
#include <fast_model.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#include "bindings.hpp"

namespace bitnetmcu_py {
namespace bn = bitnetmcu;

namespace {

struct Model {
  std::string source;           // file name, or "<bytes>"
  std::vector<uint32_t> words;  // the file, 4-byte aligned as parse_model_file requires
  std::vector<bn::LayerDesc> layers;
  bn::ModelFileInfo info{};
  bn::RuntimeNeeds needs{};
  std::unique_ptr<bn::host::FastModel> fast;  // points into words and layers: built last

  static std::shared_ptr<Model> parse(const std::string& data, const std::string& source) {
    auto m = std::make_shared<Model>();
    m->source = source;
    m->words.resize((data.size() + 3) / 4);
    if (!data.empty()) std::memcpy(m->words.data(), data.data(), data.size());
    m->layers.resize(bn::kModelFileMaxLayers);
    const auto err = bn::parse_model_file(reinterpret_cast<const uint8_t*>(m->words.data()), data.size(),
                                          m->layers.data(), bn::kModelFileMaxLayers, &m->info);
    if (err != bn::ModelFileError::Ok)
      throw py::value_error(source + ": " +
                            (m->info.error_layer != UINT32_MAX ? "layer " + std::to_string(m->info.error_layer) + ": " : "") +
                            bn::model_file_error_text(err));
    m->layers.resize(m->info.n_layers);
    m->needs = bn::runtime_needs(m->layers.data(), m->info.n_layers);
    m->fast = std::make_unique<bn::host::FastModel>(m->layers.data(), m->info.n_layers);
    return m;
  }

  size_t weight_bytes() const {
    size_t b = 0;
    for (const auto& d : layers) b += bn::layer_weight_bytes(d) + (d.rowsum ? 4u * d.n_out : 0u);
    return b;
  }
};

std::string read_file(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) {
    PyErr_SetFromErrnoWithFilename(PyExc_OSError, path.c_str());
    throw py::error_already_set();
  }
  std::string data;
  char buf[1 << 16];
  size_t got;
  while ((got = std::fread(buf, 1, sizeof buf, f)) > 0) data.append(buf, got);
  std::fclose(f);
  return data;
}

// x: int8 (N, input_size) or (input_size,). Returns the C-contiguous array and N.
py::array_t<int8_t> checked_images(const Model& m, const py::handle& obj, const char* fn, bool* single) {
  py::array a = as_array(obj);
  const std::string expected = "int8 array of shape (N, " + std::to_string(m.info.input_size) + ")";
  require_dtype<int8_t>(a, fn, expected + " (use bitnetmcu.quantize_input for float images)");
  const bool ok = (a.ndim() == 2 && a.shape(1) == m.info.input_size) ||
                  (a.ndim() == 1 && a.shape(0) == m.info.input_size);
  if (!ok) throw py::value_error(std::string(fn) + ": expected " + expected + " or (" +
                                 std::to_string(m.info.input_size) + ",), got shape " + shape_text(a));
  *single = a.ndim() == 1;
  return py::array_t<int8_t>::ensure(a);
}

// Runs images [0, n) through the model; classes[i] and, if given, logits[i][num_classes].
// threads <= 0: all cores (FastModel::run_batch uses fewer for small batches).
void run_batch(const Model& m, const int8_t* x, size_t n, int64_t* classes, int32_t* logits, int threads) {
  m.fast->run_batch(x, n, classes, logits, threads > 0 ? static_cast<unsigned>(threads) : 0u);
}

py::object predict(const Model& m, const py::handle& x, int threads) {
  bool single = false;
  auto img = checked_images(m, x, "predict", &single);
  const size_t n = single ? 1 : img.shape(0);
  py::array_t<int64_t> classes(static_cast<py::ssize_t>(n));
  {
    py::gil_scoped_release release;
    run_batch(m, img.data(), n, classes.mutable_data(), nullptr, threads);
  }
  if (single) return py::int_(classes.at(0));
  return std::move(classes);
}

py::array_t<int32_t> logits(const Model& m, const py::handle& x, int threads) {
  bool single = false;
  auto img = checked_images(m, x, "logits", &single);
  const size_t n = single ? 1 : img.shape(0);
  py::array_t<int32_t> out(std::vector<py::ssize_t>{static_cast<py::ssize_t>(n), m.info.num_classes});
  {
    py::gil_scoped_release release;
    run_batch(m, img.data(), n, nullptr, out.mutable_data(), threads);
  }
  if (single) out = out.reshape({static_cast<py::ssize_t>(m.info.num_classes)});
  return out;
}

py::dict layer_dict(const bn::LayerDesc& d) {
  py::dict l;
  l["kind"] = d.kind == bn::LayerKind::Cnn ? "cnn" : "dense";
  l["scheme"] = bn::scheme_name(d.scheme);
  l["n_in"] = d.n_in;
  l["n_out"] = d.n_out;
  l["shift"] = d.shift;
  l["rowsum"] = d.rowsum != nullptr;
  return l;
}

// Row-major codes (n_out, n_in) of a dense layer, or int8 (3, C, 3, 3) weights of a CNN block.
py::array layer_weights(const Model& m, size_t index) {
  if (index >= m.layers.size()) throw py::index_error("layer index out of range");
  const bn::LayerDesc& d = m.layers[index];
  if (d.kind == bn::LayerKind::Cnn) {
    py::array_t<int8_t> w(std::vector<py::ssize_t>{3, d.n_out, 3, 3});
    std::memcpy(w.mutable_data(), d.weights, 27u * d.n_out);
    return std::move(w);
  }
  py::array_t<uint8_t> codes(std::vector<py::ssize_t>{d.n_out, d.n_in});
  bn::visit_scheme(d.scheme, [&](auto s) {
    using S = decltype(s);
    bn::unpack_columns<S>(static_cast<const typename S::word_t*>(d.weights), d.n_out, d.n_in, codes.mutable_data());
  });
  return std::move(codes);
}

// Builds a model file from codes: list of {"scheme": name, "codes": (n_out, n_in), "rowsum": bool}
// or {"cnn": int8 (3, C, 3, 3), "shift": int}. Packing and rowsums come from the engine traits.
py::bytes model_file_from_codes(const py::list& specs) {
  if (specs.size() == 0 || specs.size() > bn::kModelFileMaxLayers)
    throw py::value_error("model_file_from_codes: expected 1.." + std::to_string(bn::kModelFileMaxLayers) + " layers");
  std::vector<bn::LayerDesc> layers;
  std::vector<std::vector<uint32_t>> storage;  // each layer's weights, then rowsums
  for (const auto& item : specs) {
    const py::dict spec = item.cast<py::dict>();
    bn::LayerDesc d{};
    if (spec.contains("cnn")) {
      py::array a = as_array(spec["cnn"]);
      require_dtype<int8_t>(a, "cnn weights", "int8 array of shape (3, C, 3, 3)");
      if (a.ndim() != 4 || a.shape(0) != 3 || a.shape(2) != 3 || a.shape(3) != 3)
        throw py::value_error("cnn weights: expected shape (3, C, 3, 3), got " + shape_text(a));
      d.kind = bn::LayerKind::Cnn;
      d.scheme = bn::SchemeId::Int8;
      d.shift = spec.contains("shift") ? spec["shift"].cast<uint8_t>() : static_cast<uint8_t>(bn::kCnnShift);
      d.n_in = spec.contains("side") ? spec["side"].cast<uint32_t>() : 16;
      d.n_out = static_cast<uint32_t>(a.shape(1));
      storage.emplace_back((27u * d.n_out + 3) / 4);
      std::memcpy(storage.back().data(), a.data(), 27u * d.n_out);
      d.weights = storage.back().data();
      layers.push_back(d);
      continue;
    }
    bn::SchemeId id{};
    const std::string name = spec["scheme"].cast<std::string>();
    if (!bn::scheme_from_name(name.c_str(), &id)) throw py::value_error("unknown scheme '" + name + "'");
    auto codes = py::module_::import("bitnetmcu").attr("schemes")[py::str(name)].attr("decode")(spec["codes"]);
    auto c8 = py::array_t<uint8_t, py::array::c_style | py::array::forcecast>::ensure(spec["codes"]);
    if (c8.ndim() != 2) throw py::value_error("codes: expected shape (n_out, n_in), got " + shape_text(c8));
    d.kind = bn::LayerKind::Dense;
    d.scheme = id;
    d.n_out = static_cast<uint32_t>(c8.shape(0));
    d.n_in = static_cast<uint32_t>(c8.shape(1));
    bn::visit_scheme(id, [&](auto s) {
      using S = decltype(s);
      const size_t bytes = bn::dense_weight_words<S>(d.n_in, d.n_out) * sizeof(typename S::word_t);
      storage.emplace_back((bytes + 3) / 4);
      std::vector<uint8_t> scratch(d.n_out);
      bn::pack_columns<S>(c8.data(), d.n_out, d.n_in, scratch.data(),
                          reinterpret_cast<typename S::word_t*>(storage.back().data()));
    });
    d.weights = storage.back().data();
    if (spec.contains("rowsum") && spec["rowsum"].cast<bool>()) {
      auto ints = codes.cast<py::array_t<int32_t>>();  // decoded by the engine's traits above
      storage.emplace_back(d.n_out);
      for (uint32_t o = 0; o < d.n_out; ++o) {
        int32_t sum = 0;
        for (uint32_t i = 0; i < d.n_in; ++i) sum += ints.data()[o * d.n_in + i];
        storage.back()[o] = static_cast<uint32_t>(sum);
      }
      d.rowsum = reinterpret_cast<const int32_t*>(storage.back().data());
    }
    layers.push_back(d);
  }
  const auto n = static_cast<uint32_t>(layers.size());
  std::string out(bn::model_file_size(layers.data(), n), '\0');
  bn::write_model_file(layers.data(), n, reinterpret_cast<uint8_t*>(&out[0]));
  Model::parse(out, "model_file_from_codes");  // the engine's own consistency checks
  return py::bytes(out);
}

}  // namespace

void bind_model(py::module_& m) {
  py::class_<Model, std::shared_ptr<Model>>(m, "Model", "An exported model (.bnm) loaded into the engine.")
      .def_static("from_bytes", &Model::parse, py::arg("data"), py::arg("name") = "<bytes>",
                  "Parse the bytes of a model file.")
      .def_property_readonly("source", [](const Model& s) { return s.source; })
      .def_property_readonly("input_size", [](const Model& s) { return s.info.input_size; })
      .def_property_readonly("num_classes", [](const Model& s) { return s.info.num_classes; })
      .def_property_readonly("weight_bytes", &Model::weight_bytes, "flash bytes of weights and rowsums")
      .def_property_readonly("scratch_bytes",
                             [](const Model& s) { return 4 * (s.needs.words_a + s.needs.words_b); },
                             "RAM the engine needs for activations")
      .def_property_readonly("layers",
                             [](const Model& s) {
                               py::list l;
                               for (const auto& d : s.layers) l.append(layer_dict(d));
                               return l;
                             })
      .def("layer_weights", &layer_weights, py::arg("index"),
           "Dense layer: uint8 codes (n_out, n_in), row-major; CNN block: int8 weights (3, C, 3, 3).")
      .def("layer_rowsum",
           [](const Model& s, size_t index) -> py::object {
             if (index >= s.layers.size()) throw py::index_error("layer index out of range");
             const auto& d = s.layers[index];
             if (!d.rowsum) return py::none();
             py::array_t<int32_t> r(static_cast<py::ssize_t>(d.n_out));
             std::memcpy(r.mutable_data(), d.rowsum, 4u * d.n_out);
             return std::move(r);
           },
           py::arg("index"))
      .def("predict", &predict, py::arg("x"), py::arg("threads") = 0)
      .def("logits", &logits, py::arg("x"), py::arg("threads") = 0)
      .def("__repr__", [](const Model& s) {
        std::string r = "<bitnetmcu.Model " + s.source + ":";
        for (const auto& d : s.layers)
          r += d.kind == bn::LayerKind::Cnn ? " cnn(C=" + std::to_string(d.n_out) + ")"
                                            : std::string(" ") + bn::scheme_name(d.scheme) + "(" +
                                                  std::to_string(d.n_in) + "->" + std::to_string(d.n_out) + ")";
        return r + ">";
      });

  m.def(
      "load_model", [](const std::string& path) { return Model::parse(read_file(path), path); }, py::arg("path"),
      "Load an exported model file (.bnm, written by bitnetmcu-export next to the header).\n"
      "Raises OSError if the file cannot be read, ValueError (naming the file) if it is not a valid model.");
  m.def("predict", &predict, py::arg("model"), py::arg("x"), py::arg("threads") = 0,
        "Classes (int64, shape (N,)) of int8 images x of shape (N, input_size); an int for one image (input_size,).\n"
        "Runs the engine's integer inference, GIL released, over `threads` threads (0: all cores).");
  m.def("logits", &logits, py::arg("model"), py::arg("x"), py::arg("threads") = 0,
        "Last layer's int32 accumulators, shape (N, num_classes), for int8 images x (N, input_size).");
  m.def("model_file_from_codes", &model_file_from_codes, py::arg("layers"),
        "Bytes of a model file built from codes: a list of {'scheme': '4bitsym', 'codes': uint8 (n_out, n_in),\n"
        "'rowsum': bool} dense layers, optionally led by {'cnn': int8 (3, C, 3, 3), 'shift': 4}.");
}

}  // namespace bitnetmcu_py
