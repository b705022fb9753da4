// Binds the simulator: mgfast._core.simulate(...) returns flux, err, optional clean flux, and the
// truth, as two dicts of NumPy arrays.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/typing.h>

#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "bind.hpp"
#include "cuda_api.hpp"
#include "simulator.hpp"

namespace mgfast::bind {

namespace {

template <class T>
py::array_t<T> zeros(std::vector<py::ssize_t> shape) {
  py::array_t<T> a(shape);
  std::fill(a.mutable_data(), a.mutable_data() + a.size(), T{});
  return a;
}

// The spectra ("flux", "err", and "clean" when asked for) and the truth arrays.
using SimulateResult =
    py::typing::Tuple<py::typing::Dict<py::str, py::array>, py::typing::Dict<py::str, py::array>>;

// Truth of n sightlines as a dict of arrays (absorber arrays padded with NaN / 0).
py::typing::Dict<py::str, py::array> truth_arrays(const std::vector<sim::Sightline>& t) {
  const py::ssize_t n = static_cast<py::ssize_t>(t.size());
  constexpr py::ssize_t A = sim::kMaxAbsorbers, C = sim::kMaxComponents, I = sim::kMaxInterlopers;
  auto n_abs = zeros<std::int32_t>({n}), n_int = zeros<std::int32_t>({n});
  auto snr = zeros<float>({n}), z_em = zeros<float>({n});
  auto flags = zeros<std::uint32_t>({n});
  auto resolution = zeros<float>({n});
  auto z = zeros<double>({n, A}), ew1 = zeros<double>({n, A}), ew2 = zeros<double>({n, A});
  auto logn = zeros<double>({n, A});
  auto ew_req = zeros<double>({n, A});
  auto ncomp = zeros<std::int32_t>({n, A});
  auto c_logn = zeros<float>({n, A, C}), c_b = zeros<float>({n, A, C}),
       c_v = zeros<float>({n, A, C});
  auto i_kind = zeros<std::int32_t>({n, I});
  auto i_z = zeros<double>({n, I});
  const double nan = std::nan("");
  for (py::ssize_t s = 0; s < n; ++s) {
    const sim::Sightline& sl = t[s];
    n_abs.mutable_at(s) = sl.n_abs;
    n_int.mutable_at(s) = sl.n_int;
    snr.mutable_at(s) = sl.snr;
    z_em.mutable_at(s) = sl.z_em;
    flags.mutable_at(s) = sl.flags;
    resolution.mutable_at(s) = sl.resolution;
    for (py::ssize_t a = 0; a < A; ++a) {
      const bool has = a < sl.n_abs;
      const sim::System& sys = sl.abs[a];
      z.mutable_at(s, a) = has ? sys.z : nan;
      ew1.mutable_at(s, a) = has ? sys.ew[0] : nan;
      ew2.mutable_at(s, a) = has ? sys.ew[1] : nan;
      ew_req.mutable_at(s, a) = has ? sys.ew_requested : nan;
      ncomp.mutable_at(s, a) = has ? sys.n_comp : 0;
      double tot = 0.0;
      for (py::ssize_t c = 0; c < C; ++c) {
        const bool hc = has && c < sys.n_comp;
        c_logn.mutable_at(s, a, c) = hc ? sys.comp[c].logn : std::nanf("");
        c_b.mutable_at(s, a, c) = hc ? sys.comp[c].b : std::nanf("");
        c_v.mutable_at(s, a, c) = hc ? sys.comp[c].v : std::nanf("");
        if (hc) tot += std::pow(10.0, sys.comp[c].logn);
      }
      logn.mutable_at(s, a) = has ? std::log10(tot) : nan;
    }
    for (py::ssize_t i = 0; i < I; ++i) {
      const bool has = i < sl.n_int;
      i_kind.mutable_at(s, i) = has ? sl.inter[i].kind : -1;
      i_z.mutable_at(s, i) = has ? sl.inter[i].z : nan;
    }
  }
  py::typing::Dict<py::str, py::array> d;
  d["n_absorbers"] = n_abs;
  d["n_interlopers"] = n_int;
  d["snr"] = snr;
  d["z_em"] = z_em;
  d["flags"] = flags;
  d["resolution"] = resolution;
  d["abs_z"] = z;
  d["abs_ew2796"] = ew1;
  d["abs_ew2803"] = ew2;
  d["abs_ew2796_requested"] = ew_req;
  d["abs_logn"] = logn;
  d["abs_n_components"] = ncomp;
  d["comp_logn"] = c_logn;
  d["comp_b"] = c_b;
  d["comp_v"] = c_v;
  d["interloper_kind"] = i_kind;
  d["interloper_z"] = i_z;
  return d;
}

SimulateResult simulate(std::int64_t n, std::uint64_t start, const carray<double>& snr,
                        const sim::Config& options, bool return_clean, const std::string& device,
                        int threads) {
  if (n < 0) throw std::invalid_argument("n: number of spectra must not be negative");
  if (n > (std::int64_t{1} << 31) / grid::kNPix * 64)
    throw std::invalid_argument("n: too many spectra for one call; stream them in batches");
  sim::Config cfg = options;
  cfg.snr_values = snr.data();
  cfg.n_snr = as_int(snr.size(), "snr");
  cfg.snr_shape = nullptr;  // the driver's own table
  validate_config(cfg);

  const py::ssize_t ns = static_cast<py::ssize_t>(n);
  py::array_t<float> flux({ns, py::ssize_t{grid::kNPix}}), err({ns, py::ssize_t{grid::kNPix}});
  py::array_t<float> clean;
  if (return_clean) clean = py::array_t<float>({ns, py::ssize_t{grid::kNPix}});
  std::vector<sim::Sightline> truth(static_cast<std::size_t>(n));
  {
    py::gil_scoped_release release;
    float* cp = return_clean ? clean.mutable_data() : nullptr;
    on_device(
        device,
        [&] {
          simulate_cpu(cfg, start, static_cast<int>(n), flux.mutable_data(), err.mutable_data(), cp,
                       truth.data(), threads);
        },
        [&](auto dev) {
          cuda::simulate(cfg, start, static_cast<int>(n), flux.mutable_data(), err.mutable_data(),
                         cp, truth.data(), dev);
        });
  }
  py::typing::Dict<py::str, py::array> d;
  d["flux"] = flux;
  d["err"] = err;
  if (return_clean) d["clean"] = clean;
  return SimulateResult(py::make_tuple(d, truth_arrays(truth)));
}

}  // namespace

void bind_simulate(py::module_& m) {
  m.def("simulate", &simulate, py::arg("n"), py::arg("start"), py::arg("snr"), py::arg("options"),
        py::arg("return_clean"), py::arg("device"), py::arg("threads"));
  m.attr("SIM_MAX_ABSORBERS") = sim::kMaxAbsorbers;
  m.attr("SIM_MAX_COMPONENTS") = sim::kMaxComponents;
  m.attr("SIM_MAX_INTERLOPERS") = sim::kMaxInterlopers;
  m.attr("SIM_NO_ABSORBER_LAMBDA") = sim::kNoAbsorberLambda;
  py::list lines;  // the simulator's quasar emission lines: rest Å, peak, FWHM km/s
  for (int i = 0; i < sim::kNumEmissionLines; ++i) {
    double lam, peak, fwhm;
    sim::emission_line(i, &lam, &peak, &fwhm);
    lines.append(py::make_tuple(lam, peak, fwhm));
  }
  m.attr("QUASAR_EMISSION_LINES") = lines;
}

}  // namespace mgfast::bind
