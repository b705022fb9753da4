// Shared helpers of the binding files and the functions each one adds to mgfast._core. Every
// bind_*.cpp defines one `void bind_xxx(py::module_&)`, declared here and called from bindings.cpp.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <stdexcept>
#include <string>

#include "continuum.hpp"
#include "grid.hpp"
#include "pipeline.hpp"

namespace mgfast::sim {
struct Config;
}

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

// Throws std::invalid_argument (a ValueError) naming the first preprocessing option the pipeline
// cannot use: the checks of mgfast._core.PreprocessOptions, its construction and every call.
inline void validate(const pipeline::Options& o) {
  if (!(o.min_pixel_good > 0.0 && o.min_pixel_good <= 1.0))
    throw std::invalid_argument("min_pixel_good: must lie in (0, 1]");
  if (!(o.min_arm_good > 0.0 && o.min_arm_good <= 1.0))
    throw std::invalid_argument("min_arm_good: must lie in (0, 1]");
  const continuum::Params& c = o.continuum;
  if (!(c.knot_spacing >= 4.0) ||
      continuum::n_basis(grid::kArmNPix[2], c.knot_spacing) > continuum::kMaxBasis)
    throw std::invalid_argument("knot_spacing: must be at least 9 pixels (and at least 4)");
  if (c.max_iter < 1) throw std::invalid_argument("max_iter: must be at least 1");
  if (!(c.spike_sigma >= 0.0 && c.spike_sigma < 1e30))
    throw std::invalid_argument("spike_sigma: must be finite and >= 0 (0: no spike rejection)");
  if (!(c.forest_penalty > 0.0 && c.forest_penalty < 1e30))
    throw std::invalid_argument("forest_penalty: must be finite and > 0");
}

// The preprocessing options of mgfast.preprocess (its ContinuumOptions), checked: for bindings
// that take them one by one (mgfast._gpu's detect_device).
inline pipeline::Options preprocess_options(bool normalise, double min_pixel_good,
                                            double min_arm_good, double knot_spacing,
                                            double penalty, double clip_low, double clip_high,
                                            int grow, int max_iter, double sigma_floor,
                                            double spike_sigma) {
  pipeline::Options o;
  o.normalise = normalise;
  o.min_pixel_good = min_pixel_good;
  o.min_arm_good = min_arm_good;
  o.continuum.knot_spacing = knot_spacing;
  o.continuum.penalty = penalty;
  o.continuum.clip_low = clip_low;
  o.continuum.clip_high = clip_high;
  o.continuum.grow = grow;
  o.continuum.max_iter = max_iter;
  o.continuum.sigma_floor = sigma_floor;
  o.continuum.spike_sigma = spike_sigma;
  validate(o);
  return o;
}

// The option structs (PreprocessOptions, ContinuumOptions, SimulateOptions, EwOptions) as
// classes of mgfast._core with named, typed fields; first, so that the functions' signatures
// name them.
void bind_options(py::module_& m);

// Throws std::invalid_argument naming the first field of SimulateOptions the simulator cannot
// use (validate_config's checks, bar the SNR list, which comes with the call).
void validate_simulate_options(const sim::Config& cfg);
void bind_simulate(py::module_& m);
void bind_matched_filter(py::module_& m);
void bind_engine(py::module_& m);

}  // namespace mgfast::bind
