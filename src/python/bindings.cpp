// The pybind11 module mgfast._core: binding code only; the logic lives in src/core, src/cpu and
// src/cuda.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <pybind11/typing.h>

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>

#include "atomic.hpp"
#include "bind.hpp"
#include "cuda_api.hpp"
#include "equivalent_width.hpp"
#include "flags.hpp"
#include "grid.hpp"
#include "preprocess.hpp"

namespace py = pybind11;
using namespace mgfast;

using bind::as_int;
using bind::carray;

namespace {

template <class F>
py::array_t<double> map_doubles(const carray<double>& x, F f) {
  py::array_t<double> out(x.request().shape);
  const double* in = x.data();
  double* o = out.mutable_data();
  const py::ssize_t n = x.size();
  for (py::ssize_t i = 0; i < n; ++i) o[i] = f(in[i]);
  return out;
}

template <class T>
py::array_t<T> per_pixel(T (*f)(int)) {
  py::array_t<T> out(grid::kNPix);
  T* o = out.mutable_data();
  for (int p = 0; p < grid::kNPix; ++p) o[p] = f(p);
  return out;
}

py::typing::Dict<py::str, py::array> preprocess(
    const carray<float>& flux, const std::optional<carray<double>>& wave,
    const std::optional<carray<float>>& err, const std::optional<carray<std::uint32_t>>& mask,
    const std::optional<carray<double>>& resolution, const std::optional<carray<double>>& z_em,
    bool err_is_ivar, std::uint32_t bad_bits, const pipeline::Options& o, bool return_continuum,
    const std::string& device, int threads) {
  if (flux.ndim() != 2) throw std::invalid_argument("flux: expected a 2-D array (n_spec, n_pix)");
  pipeline::Batch b;
  b.n_spec = as_int(flux.shape(0), "flux");
  b.n_in = as_int(flux.shape(1), "flux");
  b.flux = flux.data();
  b.on_grid = !wave.has_value();
  if (wave) {
    if (!(wave->ndim() == 1 && wave->shape(0) == flux.shape(1)) &&
        !(wave->ndim() == 2 && wave->shape(0) == flux.shape(0) && wave->shape(1) == flux.shape(1)))
      throw std::invalid_argument("wave: shape must be (n_pix,) or that of flux");
    b.wave = wave->data();
    b.wave_per_spectrum = wave->ndim() == 2;
  }
  if (err) {
    if (err->ndim() != 2 || err->shape(0) != flux.shape(0) || err->shape(1) != flux.shape(1))
      throw std::invalid_argument("err: shape must equal that of flux");
    b.err = err->data();
    b.err_is_ivar = err_is_ivar;
  }
  if (mask) {
    if (mask->ndim() != 2 || mask->shape(0) != flux.shape(0) || mask->shape(1) != flux.shape(1))
      throw std::invalid_argument("mask: shape must equal that of flux");
    b.mask = mask->data();
    b.bad_bits = bad_bits;
  }
  if (resolution) {
    if (resolution->ndim() != 1 || resolution->shape(0) != flux.shape(0))
      throw std::invalid_argument("resolution: expected one value per spectrum");
    b.r_in = resolution->data();
  }
  if (z_em) {
    if (z_em->ndim() != 1 || z_em->shape(0) != flux.shape(0))
      throw std::invalid_argument("z_em: expected one value per spectrum");
    b.z_em = z_em->data();
  }
  bind::validate(o);

  const py::ssize_t n = flux.shape(0);
  py::array_t<float> out_flux({n, py::ssize_t{grid::kNPix}});
  py::array_t<float> out_ivar({n, py::ssize_t{grid::kNPix}});
  py::array_t<std::uint8_t> out_mask({n, py::ssize_t{grid::kNPix}});
  py::array_t<std::uint32_t> out_flags(n);
  py::array_t<std::int32_t> out_nm({n, py::ssize_t{grid::kNumArms}});
  py::array_t<float> out_cont;
  pipeline::Output out;
  out.flux = out_flux.mutable_data();
  out.ivar = out_ivar.mutable_data();
  out.pixmask = out_mask.mutable_data();
  out.flags = out_flags.mutable_data();
  out.n_masked = out_nm.mutable_data();
  if (return_continuum) {
    out_cont = py::array_t<float>({n, py::ssize_t{grid::kNPix}});
    out.continuum = out_cont.mutable_data();
  }
  {
    py::gil_scoped_release release;
    bind::on_device(
        device, [&] { preprocess_cpu(b, o, out, threads); },
        [&](auto dev) {
          validate_batch(b);
          cuda::preprocess(b, o, out, dev);
        });
  }
  py::typing::Dict<py::str, py::array> d;
  d["flux"] = out_flux;
  d["ivar"] = out_ivar;
  d["pixmask"] = out_mask;
  d["flags"] = out_flags;
  d["n_masked"] = out_nm;
  if (return_continuum) d["continuum"] = out_cont;
  return d;
}

py::typing::Tuple<py::array_t<float>, py::array_t<float>, py::array_t<std::uint8_t>> lsf_degrade(
    const carray<double>& wave, const carray<float>& flux, const std::optional<carray<float>>& err,
    const carray<double>& r_in, double r_out, int threads) {
  if (flux.ndim() != 2) throw std::invalid_argument("flux: expected a 2-D array");
  const bool per = wave.ndim() == 2;
  if ((per && (wave.shape(0) != flux.shape(0) || wave.shape(1) != flux.shape(1))) ||
      (!per && (wave.ndim() != 1 || wave.shape(0) != flux.shape(1))))
    throw std::invalid_argument("wave: shape must be (n_pix,) or that of flux");
  if (err && (err->ndim() != 2 || err->shape(0) != flux.shape(0) || err->shape(1) != flux.shape(1)))
    throw std::invalid_argument("err: shape must equal that of flux");
  if (r_in.ndim() != 1 || r_in.shape(0) != flux.shape(0))
    throw std::invalid_argument("resolution: expected one value per spectrum");
  const int n = as_int(flux.shape(0), "flux"), m = as_int(flux.shape(1), "flux");
  py::array_t<float> fo({flux.shape(0), flux.shape(1)}), eo({flux.shape(0), flux.shape(1)});
  py::array_t<std::uint8_t> go({flux.shape(0), flux.shape(1)});
  {
    py::gil_scoped_release release;
    lsf_degrade_cpu(n, m, wave.data(), per, flux.data(), err ? err->data() : nullptr, r_in.data(),
                    r_out, fo.mutable_data(), eo.mutable_data(), go.mutable_data(), threads);
  }
  return py::typing::Tuple<py::array_t<float>, py::array_t<float>, py::array_t<std::uint8_t>>(
      py::make_tuple(fo, eo, go));
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "mgfast's compiled core (private: use the mgfast package)";
  m.attr("__version__") = MGFAST_VERSION;
#ifdef MGFAST_HAVE_CUDA
  m.attr("built_with_cuda") = true;
  m.def("cuda_device_count", &cuda::device_count);
  m.def("cuda_device_name", &cuda::device_name, py::arg("device"));
#else
  m.attr("built_with_cuda") = false;
  m.def("cuda_device_count", [] { return 0; });
  m.def(
      "cuda_device_name",
      [](int) -> std::string { throw std::runtime_error("this mgfast was built without CUDA"); },
      py::arg("device"));
#endif

  bind::bind_options(m);  // first: the signatures below name its classes

  // The grid.
  m.attr("N_PIX") = grid::kNPix;
  m.attr("N_ARMS") = grid::kNumArms;
  m.attr("RESOLVING_POWER") = grid::kResolvingPower;
  m.attr("DLNLAMBDA") = grid::kDlnLambda;
  py::list arms;
  for (int a = 0; a < grid::kNumArms; ++a)
    arms.append(py::make_tuple(grid::kArmNames[a], grid::kArmLo[a], grid::kArmHi[a],
                               grid::kArmStart[a], grid::kArmStart[a] + grid::kArmNPix[a]));
  m.attr("ARMS") = arms;
  m.def("arm_npix_from_rule", &grid::arm_npix_from_rule, py::arg("arm"));
  m.def("grid_wavelength", [] { return per_pixel<double>(grid::wavelength); });
  m.def("grid_lo_edge", [] { return per_pixel<double>(grid::pixel_lo_edge); });
  m.def("grid_hi_edge", [] { return per_pixel<double>(grid::pixel_hi_edge); });
  m.def("grid_arm_index", [] { return per_pixel<int>(grid::arm_of_pixel); });
  m.def("grid_edge_distance", [] { return per_pixel<int>(grid::edge_distance); });
  m.def(
      "pixel_of_wavelength",
      [](const carray<double>& lam) { return map_doubles(lam, grid::pixel_of_wavelength); },
      py::arg("lam"));
  m.def(
      "wavelength_of_pixel",
      [](const carray<double>& x) { return map_doubles(x, grid::wavelength_of_pixel); },
      py::arg("pixel"));

  // Atomic data.
  py::dict lines;
  for (const auto& l : {atomic::kMgII2796, atomic::kMgII2803})
    lines[l.name] = py::make_tuple(l.lambda, l.f, l.gamma);
  m.attr("LINES") = lines;

  // Flags.
  py::dict pix, spec;
  pix["NOT_COVERED"] = flags::kPixNotCovered;
  pix["BAD_INPUT"] = flags::kPixBadInput;
  pix["ARM_MISSING"] = flags::kPixArmMissing;
  pix["CONTINUUM_FAILED"] = flags::kPixContinuumFailed;
  pix["BEYOND_ZEM"] = flags::kPixBeyondZem;
  pix["SPIKE"] = flags::kPixSpike;
  spec["ARM_MISSING_BLUE"] = flags::kArmMissingBlue;
  spec["ARM_MISSING_GREEN"] = flags::kArmMissingGreen;
  spec["ARM_MISSING_RED"] = flags::kArmMissingRed;
  spec["LOW_RESOLUTION"] = flags::kLowResolution;
  spec["CONTINUUM_FAILED"] = flags::kContinuumFailed;
  spec["ALL_MASKED"] = flags::kAllMasked;
  spec["NO_ERRORS"] = flags::kNoErrors;
  m.attr("PIXEL_FLAGS") = pix;
  m.attr("SPECTRUM_FLAGS") = spec;

  // Preprocessing.
  m.def("preprocess", &preprocess, py::arg("flux"), py::arg("wave"), py::arg("err"),
        py::arg("mask"), py::arg("resolution"), py::arg("z_em"), py::arg("err_is_ivar"),
        py::arg("bad_bits"), py::arg("options"), py::arg("return_continuum"), py::arg("device"),
        py::arg("threads"));
  m.def(
      "median_snr",
      [](const carray<float>& ivar, int threads) {
        if (ivar.ndim() != 2) throw std::invalid_argument("ivar: expected a 2-D array");
        py::array_t<float> out(ivar.shape(0));
        const int n_pix = as_int(ivar.shape(1), "ivar");
        float* o = out.mutable_data();
        {
          py::gil_scoped_release release;
          median_snr_cpu(ivar.data(), ivar.shape(0), n_pix, o, threads);
        }
        return out;
      },
      py::arg("ivar"), py::arg("threads") = 0);
  m.def(
      "measure_ew",
      [](const carray<float>& flux, const carray<float>& ivar, const carray<std::int64_t>& spectrum,
         const carray<double>& z, const carray<double>& guess, const EwOptions& o,
         int threads) -> py::typing::Tuple<py::array_t<double>, py::array_t<double>> {
        if (flux.ndim() != 2 || ivar.ndim() != 2 || flux.shape(0) != ivar.shape(0) ||
            flux.shape(1) != ivar.shape(1))
          throw std::invalid_argument("flux and ivar: expected 2-D arrays of one shape");
        const py::ssize_t n = spectrum.size();
        if (spectrum.ndim() != 1 || z.size() != n || guess.size() != n)
          throw std::invalid_argument("spectrum, z, guess: expected 1-D arrays of one length");
        py::array_t<double> ew({n, py::ssize_t{2}}), sigma({n, py::ssize_t{2}});
        double* e = ew.mutable_data();
        double* s = sigma.mutable_data();
        const int n_pix = as_int(flux.shape(1), "flux");
        {
          py::gil_scoped_release release;
          measure_ew_cpu(flux.data(), ivar.data(), flux.shape(0), n_pix, spectrum.data(), z.data(),
                         guess.data(), n, o, e, s, threads);
        }
        return py::typing::Tuple<py::array_t<double>, py::array_t<double>>(
            py::make_tuple(ew, sigma));
      },
      py::arg("flux"), py::arg("ivar"), py::arg("spectrum"), py::arg("z"), py::arg("guess"),
      py::arg("options"), py::arg("threads") = 0);
  m.def("lsf_degrade", &lsf_degrade, py::arg("wave"), py::arg("flux"), py::arg("err"),
        py::arg("resolution"), py::arg("r_out"), py::arg("threads"));
  bind::bind_simulate(m);
  bind::bind_matched_filter(m);
  bind::bind_engine(m);
}
