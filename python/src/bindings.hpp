// Shared pieces of the pybind11 bindings: one bind_* function per source file, plus the
// numpy argument checks that give numpy-style TypeError/ValueError messages.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>

namespace bitnetmcu_py {
namespace py = pybind11;

void bind_schemes(py::module_& m);
void bind_model(py::module_& m);
void bind_input(py::module_& m);

// "(N, 256)" style text of an array's shape.
std::string shape_text(const py::array& a);

// Raises TypeError unless `a` has dtype T exactly (no silent casts of integer data);
// `what` names the argument and `expected` the expected array, e.g. "int8 array of shape (N, 256)".
template <class T>
void require_dtype(const py::array& a, const char* what, const std::string& expected) {
  if (!a.dtype().is(py::dtype::of<T>()))
    throw py::type_error(std::string(what) + ": expected " + expected + ", got dtype " +
                         std::string(py::str(a.dtype())) + " with shape " + shape_text(a));
}

// Converts any array-like to a C-contiguous numpy array (no dtype change).
inline py::array as_array(const py::handle& obj) {
  return py::array::ensure(obj, py::array::c_style);
}

}  // namespace bitnetmcu_py
