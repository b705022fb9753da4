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

// The index N of "cuda" (0) or "cuda:N"; anything else is a ValueError naming the argument.
inline int cuda_index(const std::string& device) {
  if (device == "cuda") return 0;
  const std::string digits = device.size() > 5 ? device.substr(5) : "";
  if (device.compare(0, 5, "cuda:") != 0 || digits.empty() ||
      digits.find_first_not_of("0123456789") != std::string::npos || digits.size() > 6)
    throw std::invalid_argument("device: expected 'cpu' or 'cuda[:N]', got '" + device + "'");
  return std::stoi(digits);
}

// Runs cpu() for device "cpu" and gpu(N) for "cuda[:N]". gpu is a generic lambda, so a build
// without CUDA never instantiates (or links) its body and says instead what is missing.
template <class Cpu, class Gpu>
void on_device(const std::string& device, Cpu&& cpu, Gpu&& gpu) {
  if (device == "cpu") {
    cpu();
    return;
  }
  const int index = cuda_index(device);
#ifdef MGFAST_HAVE_CUDA
  gpu(index);
#else
  (void)gpu;
  (void)index;
  throw std::runtime_error("device '" + device +
                           "': this mgfast was built without CUDA; rebuild with the CUDA toolkit "
                           "(MGFAST_CUDA=ON) or use device='cpu'");
#endif
}

inline int as_int(py::ssize_t v, const char* what) {
  if (v > INT32_MAX) throw std::invalid_argument(std::string(what) + ": too many elements");
  return static_cast<int>(v);
}

void bind_simulate(py::module_& m);
void bind_matched_filter(py::module_& m);
void bind_engine(py::module_& m);

}  // namespace mgfast::bind
