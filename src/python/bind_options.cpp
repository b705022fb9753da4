// Binds the option structs of the core as classes of mgfast._core: PreprocessOptions
// (pipeline::Options) with its ContinuumOptions (continuum::Params), SimulateOptions (sim::Config
// without the SNR list, which simulate takes as an array) and EwOptions. Each has keyword-only
// constructor arguments named and typed like its fields, with the C++ defaults, and is checked
// when constructed and again by every call that takes it (a ValueError naming the field), so
// fields may be assigned one by one in between.
#include <pybind11/pybind11.h>

#include <string>
#include <vector>

#include "bind.hpp"
#include "equivalent_width.hpp"
#include "pipeline.hpp"
#include "simulator.hpp"

namespace mgfast::bind {

namespace {

// "Name(field=value, ...)" from the fields' own reprs.
template <class T>
void def_repr(py::class_<T>& c, std::string name, std::vector<std::string> fields) {
  c.def("__repr__", [name, fields](const py::object& self) {
    std::string s = name + "(";
    for (std::size_t i = 0; i < fields.size(); ++i)
      s += (i ? ", " : "") + fields[i] + "=" + std::string(py::repr(self.attr(fields[i].c_str())));
    return s + ")";
  });
}

}  // namespace

void validate_simulate_options(const sim::Config& cfg) {
  sim::Config c = cfg;
  const double one = 1.0;  // the SNR list comes with the call: a valid stand-in here
  if (c.snr_values == nullptr) {
    c.snr_values = &one;
    c.n_snr = 1;
  }
  validate_config(c);
}

void bind_options(py::module_& m) {
  const continuum::Params dc{};
  py::class_<continuum::Params> cont(
      m, "ContinuumOptions", "The continuum fit of each arm (src/core/preprocess/continuum.hpp).");
  cont.def(py::init([](double knot_spacing, double penalty, double clip_low, double clip_high,
                       int grow, int max_iter, double sigma_floor, double spike_sigma,
                       double forest_penalty) {
             continuum::Params c;
             c.knot_spacing = knot_spacing;
             c.penalty = penalty;
             c.clip_low = clip_low;
             c.clip_high = clip_high;
             c.grow = grow;
             c.max_iter = max_iter;
             c.sigma_floor = sigma_floor;
             c.spike_sigma = spike_sigma;
             c.forest_penalty = forest_penalty;
             pipeline::Options o;
             o.continuum = c;
             validate(o);
             return c;
           }),
           py::kw_only(), py::arg("knot_spacing") = dc.knot_spacing,
           py::arg("penalty") = dc.penalty, py::arg("clip_low") = dc.clip_low,
           py::arg("clip_high") = dc.clip_high, py::arg("grow") = dc.grow,
           py::arg("max_iter") = dc.max_iter, py::arg("sigma_floor") = dc.sigma_floor,
           py::arg("spike_sigma") = dc.spike_sigma, py::arg("forest_penalty") = dc.forest_penalty)
      .def_readwrite("knot_spacing", &continuum::Params::knot_spacing)
      .def_readwrite("penalty", &continuum::Params::penalty)
      .def_readwrite("clip_low", &continuum::Params::clip_low)
      .def_readwrite("clip_high", &continuum::Params::clip_high)
      .def_readwrite("grow", &continuum::Params::grow)
      .def_readwrite("max_iter", &continuum::Params::max_iter)
      .def_readwrite("sigma_floor", &continuum::Params::sigma_floor)
      .def_readwrite("spike_sigma", &continuum::Params::spike_sigma)
      .def_readwrite("forest_penalty", &continuum::Params::forest_penalty);
  def_repr(cont, "ContinuumOptions",
           {"knot_spacing", "penalty", "clip_low", "clip_high", "grow", "max_iter", "sigma_floor",
            "spike_sigma", "forest_penalty"});

  const pipeline::Options dp{};
  py::class_<pipeline::Options> pre(
      m, "PreprocessOptions",
      "The options of mgfast._core.preprocess (src/core/preprocess/pipeline.hpp).");
  pre.def(py::init([](bool normalise, double min_pixel_good, double min_arm_good,
                      const continuum::Params& continuum) {
            pipeline::Options o;
            o.normalise = normalise;
            o.min_pixel_good = min_pixel_good;
            o.min_arm_good = min_arm_good;
            o.continuum = continuum;
            validate(o);
            return o;
          }),
          py::kw_only(), py::arg("normalise") = dp.normalise,
          py::arg("min_pixel_good") = dp.min_pixel_good, py::arg("min_arm_good") = dp.min_arm_good,
          py::arg("continuum") = dp.continuum)
      .def_readwrite("normalise", &pipeline::Options::normalise)
      .def_readwrite("min_pixel_good", &pipeline::Options::min_pixel_good)
      .def_readwrite("min_arm_good", &pipeline::Options::min_arm_good)
      .def_readwrite("continuum", &pipeline::Options::continuum);
  def_repr(pre, "PreprocessOptions", {"normalise", "min_pixel_good", "min_arm_good", "continuum"});

  using sim::Config;
  const Config ds{};
  py::class_<Config> simo(
      m, "SimulateOptions",
      "The simulator's configuration (sim::Config in src/core/simulate/simulate.hpp) but the SNR "
      "list, "
      "which mgfast._core.simulate takes as an array; kinematics 0 (paper) or 1 (sky).");
  simo.def(
      py::init([](std::uint64_t seed, double absorber_fraction, int max_absorbers, double ew_min,
                  double ew_max, double edge_margin, double edge_snr_ratio, int edge_taper_pixels,
                  bool noise, bool metals, double interloper_rate, bool forest, bool unnormalised,
                  double continuum_error, double sky_residual, double bad_pixel_rate,
                  double z_em_min, double z_em_max, int kinematics, double blend_fraction,
                  double resolution_min, double resolution_max, double wavelength_shift_kms,
                  double err_misestimate, double correlated_noise, bool random_edges,
                  double cosmic_ray_rate, bool telluric, bool impostors, double bal_fraction,
                  double dla_rate) {
        Config c;
        c.seed = seed;
        c.absorber_fraction = absorber_fraction;
        c.max_absorbers = max_absorbers;
        c.ew_min = ew_min;
        c.ew_max = ew_max;
        c.edge_margin = edge_margin;
        c.edge_snr_ratio = edge_snr_ratio;
        c.edge_taper_pixels = edge_taper_pixels;
        c.noise = noise;
        c.metals = metals;
        c.interloper_rate = interloper_rate;
        c.forest = forest;
        c.unnormalised = unnormalised;
        c.continuum_error = continuum_error;
        c.sky_residual = sky_residual;
        c.bad_pixel_rate = bad_pixel_rate;
        c.z_em_min = z_em_min;
        c.z_em_max = z_em_max;
        c.kinematics = kinematics;
        c.blend_fraction = blend_fraction;
        c.resolution_min = resolution_min;
        c.resolution_max = resolution_max;
        c.wavelength_shift_kms = wavelength_shift_kms;
        c.err_misestimate = err_misestimate;
        c.correlated_noise = correlated_noise;
        c.random_edges = random_edges;
        c.cosmic_ray_rate = cosmic_ray_rate;
        c.telluric = telluric;
        c.impostors = impostors;
        c.bal_fraction = bal_fraction;
        c.dla_rate = dla_rate;
        validate_simulate_options(c);
        return c;
      }),
      py::kw_only(), py::arg("seed") = ds.seed, py::arg("absorber_fraction") = ds.absorber_fraction,
      py::arg("max_absorbers") = ds.max_absorbers, py::arg("ew_min") = ds.ew_min,
      py::arg("ew_max") = ds.ew_max, py::arg("edge_margin") = ds.edge_margin,
      py::arg("edge_snr_ratio") = ds.edge_snr_ratio,
      py::arg("edge_taper_pixels") = ds.edge_taper_pixels, py::arg("noise") = ds.noise,
      py::arg("metals") = ds.metals, py::arg("interloper_rate") = ds.interloper_rate,
      py::arg("forest") = ds.forest, py::arg("unnormalised") = ds.unnormalised,
      py::arg("continuum_error") = ds.continuum_error, py::arg("sky_residual") = ds.sky_residual,
      py::arg("bad_pixel_rate") = ds.bad_pixel_rate, py::arg("z_em_min") = ds.z_em_min,
      py::arg("z_em_max") = ds.z_em_max, py::arg("kinematics") = ds.kinematics,
      py::arg("blend_fraction") = ds.blend_fraction, py::arg("resolution_min") = ds.resolution_min,
      py::arg("resolution_max") = ds.resolution_max,
      py::arg("wavelength_shift_kms") = ds.wavelength_shift_kms,
      py::arg("err_misestimate") = ds.err_misestimate,
      py::arg("correlated_noise") = ds.correlated_noise, py::arg("random_edges") = ds.random_edges,
      py::arg("cosmic_ray_rate") = ds.cosmic_ray_rate, py::arg("telluric") = ds.telluric,
      py::arg("impostors") = ds.impostors, py::arg("bal_fraction") = ds.bal_fraction,
      py::arg("dla_rate") = ds.dla_rate);
  const std::vector<std::string> sim_fields = {"seed",
                                               "absorber_fraction",
                                               "max_absorbers",
                                               "ew_min",
                                               "ew_max",
                                               "edge_margin",
                                               "edge_snr_ratio",
                                               "edge_taper_pixels",
                                               "noise",
                                               "metals",
                                               "interloper_rate",
                                               "forest",
                                               "unnormalised",
                                               "continuum_error",
                                               "sky_residual",
                                               "bad_pixel_rate",
                                               "z_em_min",
                                               "z_em_max",
                                               "kinematics",
                                               "blend_fraction",
                                               "resolution_min",
                                               "resolution_max",
                                               "wavelength_shift_kms",
                                               "err_misestimate",
                                               "correlated_noise",
                                               "random_edges",
                                               "cosmic_ray_rate",
                                               "telluric",
                                               "impostors",
                                               "bal_fraction",
                                               "dla_rate"};
  simo.def_readwrite("seed", &Config::seed)
      .def_readwrite("absorber_fraction", &Config::absorber_fraction)
      .def_readwrite("max_absorbers", &Config::max_absorbers)
      .def_readwrite("ew_min", &Config::ew_min)
      .def_readwrite("ew_max", &Config::ew_max)
      .def_readwrite("edge_margin", &Config::edge_margin)
      .def_readwrite("edge_snr_ratio", &Config::edge_snr_ratio)
      .def_readwrite("edge_taper_pixels", &Config::edge_taper_pixels)
      .def_readwrite("noise", &Config::noise)
      .def_readwrite("metals", &Config::metals)
      .def_readwrite("interloper_rate", &Config::interloper_rate)
      .def_readwrite("forest", &Config::forest)
      .def_readwrite("unnormalised", &Config::unnormalised)
      .def_readwrite("continuum_error", &Config::continuum_error)
      .def_readwrite("sky_residual", &Config::sky_residual)
      .def_readwrite("bad_pixel_rate", &Config::bad_pixel_rate)
      .def_readwrite("z_em_min", &Config::z_em_min)
      .def_readwrite("z_em_max", &Config::z_em_max)
      .def_readwrite("kinematics", &Config::kinematics)
      .def_readwrite("blend_fraction", &Config::blend_fraction)
      .def_readwrite("resolution_min", &Config::resolution_min)
      .def_readwrite("resolution_max", &Config::resolution_max)
      .def_readwrite("wavelength_shift_kms", &Config::wavelength_shift_kms)
      .def_readwrite("err_misestimate", &Config::err_misestimate)
      .def_readwrite("correlated_noise", &Config::correlated_noise)
      .def_readwrite("random_edges", &Config::random_edges)
      .def_readwrite("cosmic_ray_rate", &Config::cosmic_ray_rate)
      .def_readwrite("telluric", &Config::telluric)
      .def_readwrite("impostors", &Config::impostors)
      .def_readwrite("bal_fraction", &Config::bal_fraction)
      .def_readwrite("dla_rate", &Config::dla_rate);
  def_repr(simo, "SimulateOptions", sim_fields);

  const EwOptions de{};
  py::class_<EwOptions> ew(m, "EwOptions",
                           "The equivalent-width windows of mgfast._core.measure_ew "
                           "(src/core/ew/equivalent_width.hpp).");
  ew.def(py::init([](double half_factor, double half_min, double half_max, double side,
                     double min_coverage, double floor) {
           const EwOptions o{half_factor, half_min, half_max, side, min_coverage, floor};
           validate(o);
           return o;
         }),
         py::kw_only(), py::arg("half_factor") = de.half_factor, py::arg("half_min") = de.half_min,
         py::arg("half_max") = de.half_max, py::arg("side") = de.side,
         py::arg("min_coverage") = de.min_coverage, py::arg("floor") = de.floor)
      .def_readwrite("half_factor", &EwOptions::half_factor)
      .def_readwrite("half_min", &EwOptions::half_min)
      .def_readwrite("half_max", &EwOptions::half_max)
      .def_readwrite("side", &EwOptions::side)
      .def_readwrite("min_coverage", &EwOptions::min_coverage)
      .def_readwrite("floor", &EwOptions::floor);
  def_repr(ew, "EwOptions",
           {"half_factor", "half_min", "half_max", "side", "min_coverage", "floor"});
}

}  // namespace mgfast::bind
