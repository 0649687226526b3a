// The `bitnetmcu` extension module: the engine's schemes, model files and inference on numpy.
#include "bindings.hpp"

namespace bitnetmcu_py {
std::string shape_text(const py::array& a) {
  std::string s = "(";
  for (py::ssize_t i = 0; i < a.ndim(); ++i) s += (i ? ", " : "") + std::to_string(a.shape(i));
  return s + (a.ndim() == 1 ? ",)" : ")");
}
}  // namespace bitnetmcu_py

PYBIND11_MODULE(bitnetmcu, m) {
  m.doc() =
      "bitnetmcu: the multiplication-free integer inference engine of the CH32V003 firmware, on numpy.\n\n"
      "  model = bitnetmcu.load_model('modeldata/fc_4bitsym.bnm')\n"
      "  x = bitnetmcu.quantize_input(bitnetmcu.preprocess(images_uint8_28x28))\n"
      "  digits = bitnetmcu.predict(model, x)\n\n"
      "Weight schemes: bitnetmcu.schemes['4bitsym'].encode(...), .decode, .value, .pack, .unpack.";
  bitnetmcu_py::bind_schemes(m);
  bitnetmcu_py::bind_model(m);
  bitnetmcu_py::bind_input(m);
}
