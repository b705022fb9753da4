// Shared helpers of the binding files and the functions each one adds to mgfast._core. Every
// bind_*.cpp defines one `void bind_xxx(py::module_&)`, declared here and called from bindings.cpp.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <stdexcept>
#include <string>

namespace mgfast::bind {

namespace py = pybind11;

// A C-contiguous array of T, converting (copying) other layouts and dtypes.
template <class T>
using carray = py::array_t<T, py::array::c_style | py::array::forcecast>;

inline int as_int(py::ssize_t v, const char* what) {
  if (v > INT32_MAX) throw std::invalid_argument(std::string(what) + ": too many elements");
  return static_cast<int>(v);
}

void bind_simulate(py::module_& m);
void bind_matched_filter(py::module_& m);
void bind_engine(py::module_& m);

}  // namespace mgfast::bind
