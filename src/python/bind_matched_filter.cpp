// Binds the doublet matched filter: mgfast._core.matched_filter(...) returns the top-k candidates
// of each spectrum as a dict of (N, k) NumPy arrays.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <pybind11/typing.h>

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>

#include "bind.hpp"
#include "cuda_api.hpp"
#include "grid.hpp"
#include "matched_filter.hpp"

namespace mgfast::bind {

namespace {

py::typing::Dict<py::str, py::array> matched_filter(const carray<float>& flux,
                                                    const std::optional<carray<float>>& ivar,
                                                    const carray<double>& widths, int top_k,
                                                    double ratio_lo, double ratio_hi,
                                                    double ratio_sigma, const std::string& device,
                                                    int threads) {
  if (flux.ndim() != 2 || flux.shape(1) != grid::kNPix)
    throw std::invalid_argument("flux: expected shape (N, " + std::to_string(grid::kNPix) +
                                "), spectra on mgfast.grid");
  if (ivar &&
      (ivar->ndim() != 2 || ivar->shape(0) != flux.shape(0) || ivar->shape(1) != flux.shape(1)))
    throw std::invalid_argument("ivar: shape must equal that of flux");
  if (widths.ndim() != 1) throw std::invalid_argument("widths: expected a 1-D array");
  const matched_filter::Filter f = matched_filter::make_filter(
      widths.data(), as_int(widths.shape(0), "widths"), top_k, ratio_lo, ratio_hi, ratio_sigma);
  matched_filter::Batch b;
  b.n_spec = as_int(flux.shape(0), "flux");
  b.flux = flux.data();
  b.ivar = ivar ? ivar->data() : nullptr;

  const py::ssize_t n = flux.shape(0), k = top_k;
  py::array_t<float> sig({n, k}), ew({n, k});
  py::array_t<double> lam({n, k}), z({n, k});
  py::array_t<std::int32_t> width({n, k});
  matched_filter::Output out;
  out.significance = sig.mutable_data();
  out.lambda2796 = lam.mutable_data();
  out.redshift = z.mutable_data();
  out.ew2796 = ew.mutable_data();
  out.width = width.mutable_data();
  {
    py::gil_scoped_release release;
    on_device(
        device, [&] { matched_filter::run_cpu(b, f, out, threads); },
        [&](auto dev) {
          matched_filter::validate(b);
          cuda::matched_filter(b, f, out, dev);
        });
  }
  py::typing::Dict<py::str, py::array> d;
  d["significance"] = sig;
  d["lambda2796"] = lam;
  d["redshift"] = z;
  d["ew2796"] = ew;
  d["width"] = width;
  return d;
}

}  // namespace

void bind_matched_filter(py::module_& m) {
  m.attr("MF_MAX_WIDTHS") = matched_filter::kMaxWidths;
  m.attr("MF_MIN_WIDTH") = matched_filter::kMinWidth;
  m.attr("MF_MAX_WIDTH") = matched_filter::kMaxWidth;
  m.attr("MF_MAX_TOP_K") = matched_filter::kMaxTopK;
  m.attr("MF_THIN_RATIO") = matched_filter::thin_ratio();
  m.def("matched_filter", &matched_filter, py::arg("flux"), py::arg("ivar"), py::arg("widths"),
        py::arg("top_k"), py::arg("ratio_lo"), py::arg("ratio_hi"), py::arg("ratio_sigma"),
        py::arg("device"), py::arg("threads"));
}

}  // namespace mgfast::bind
