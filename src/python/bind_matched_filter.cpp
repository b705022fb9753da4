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
#include <vector>

#include "bind.hpp"
#include "cuda_api.hpp"
#include "grid.hpp"
#include "matched_filter.hpp"

namespace mgfast::bind {

namespace {

// What the filter is built with: bound as mgfast._core.MatchedFilterOptions, checked when built
// (make_filter) and again by the call.
struct MatchedFilterOptions {
  std::vector<double> widths{0.6, 1.2, 2.5, 5.0};  // template σ, pixels (mgfast.matched_filter)
  int top_k = 4;
  double ratio_lo = 0.8, ratio_hi = 2.2, ratio_sigma = 2.0;
};

matched_filter::Filter filter_of(const MatchedFilterOptions& o) {
  return matched_filter::make_filter(o.widths.data(), static_cast<int>(o.widths.size()), o.top_k,
                                     o.ratio_lo, o.ratio_hi, o.ratio_sigma);
}

py::typing::Dict<py::str, py::array> matched_filter(const carray<float>& flux,
                                                    const std::optional<carray<float>>& ivar,
                                                    const MatchedFilterOptions& options,
                                                    const std::string& device, int threads) {
  if (flux.ndim() != 2 || flux.shape(1) != grid::kNPix)
    throw std::invalid_argument("flux: expected shape (N, " + std::to_string(grid::kNPix) +
                                "), spectra on mgfast.grid");
  if (ivar &&
      (ivar->ndim() != 2 || ivar->shape(0) != flux.shape(0) || ivar->shape(1) != flux.shape(1)))
    throw std::invalid_argument("ivar: shape must equal that of flux");
  const matched_filter::Filter f = filter_of(options);
  const int top_k = options.top_k;
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
  py::class_<MatchedFilterOptions>(m, "MatchedFilterOptions",
                                   "The doublet matched filter's templates and doublet-ratio test "
                                   "(src/core/matched_filter/matched_filter.hpp).")
      .def(py::init([](const std::vector<double>& widths, int top_k, double ratio_lo,
                       double ratio_hi, double ratio_sigma) {
             MatchedFilterOptions o{widths, top_k, ratio_lo, ratio_hi, ratio_sigma};
             filter_of(o);  // checks every field
             return o;
           }),
           py::kw_only(), py::arg("widths") = std::vector<double>{0.6, 1.2, 2.5, 5.0},
           py::arg("top_k") = 4, py::arg("ratio_lo") = 0.8, py::arg("ratio_hi") = 2.2,
           py::arg("ratio_sigma") = 2.0)
      .def_readonly("widths", &MatchedFilterOptions::widths)
      .def_readonly("top_k", &MatchedFilterOptions::top_k)
      .def_readonly("ratio_lo", &MatchedFilterOptions::ratio_lo)
      .def_readonly("ratio_hi", &MatchedFilterOptions::ratio_hi)
      .def_readonly("ratio_sigma", &MatchedFilterOptions::ratio_sigma);
  m.def("matched_filter", &matched_filter, py::arg("flux"), py::arg("ivar"), py::arg("options"),
        py::arg("device"), py::arg("threads"));
}

}  // namespace mgfast::bind
