// CPU driver of the simulator: spectra are split across threads; each spectrum is planned, then
// rendered pixel by pixel, with the same stage functions the CUDA driver launches.
#include "simulator.hpp"

#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "parallel.hpp"

namespace mgfast {

namespace {
void require(bool ok, const std::string& what) {
  if (!ok) throw std::invalid_argument(what);
}
// Per-thread scratch of the CPU driver.
struct Scratch {
  std::vector<sim::Line> lines;
  std::vector<float> absorb, trans, z;
};

// Simulates spectra begin .. end - 1 of a call (indices start + s). On x86-64 with GCC it is
// compiled twice, for any x86-64 and for x86-64-v3 (AVX2), and the loader picks one by the CPU:
// the vectorised loops (fastmath.hpp) run twice as wide on the second. The core is compiled with
// floating-point contraction off, so both give bit-identical spectra (docs/simulator.md).
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
__attribute__((target_clones("default", "arch=x86-64-v3"), flatten))
#endif
void simulate_range(const sim::Config& c, std::uint64_t start, std::int64_t begin,
                    std::int64_t end, Scratch* scratch, float* flux, float* err, float* clean,
                    sim::Sightline* truth) {
  Scratch& w = *scratch;
  w.lines.resize(sim::kMaxLines);
  w.absorb.resize(sim::kMaxArmSamples);
  w.trans.resize(grid::kNPix);
  w.z.assign(2 * sim::kNPixelPairs, 0.0f);
  for (std::int64_t s = begin; s < end; ++s) {
    const std::uint64_t index = start + static_cast<std::uint64_t>(s);
    const std::size_t row = static_cast<std::size_t>(s) * grid::kNPix;
    const int n_lines = sim::stage_plan(c, index, &truth[s], w.lines.data());
    float* trans = clean ? clean + row : w.trans.data();
    sim::render_spectrum(w.lines.data(), n_lines, truth[s].resolution, w.absorb.data(), trans);
    // The same numbers as stage_pixel_pair, in two passes: every pixel's normal first (a
    // branch-free loop the compiler vectorises), then the pixels.
    float* z = w.z.data();
    if (c.noise)
      for (int k = 0; k < sim::kNPixelPairs; ++k)
        rng::normal_pair(c.seed, index, sim::kStreamNoise, k, &z[2 * k], &z[2 * k + 1]);
    const float rho = truth[s].rho;
    if (c.noise && rho > 0.0f) {  // in place, forwards: z[p + 1] is still the original
      for (int p = 0; p + 1 < 2 * sim::kNPixelPairs; ++p)
        z[p] = sim::correlate(z[p], z[p + 1], rho);
    }
    for (int p = 0; p < grid::kNPix; ++p)
      sim::stage_pixel(c, truth[s], trans, p, z[p], flux + row, err + row);
  }
}
}  // namespace

void validate_config(const sim::Config& c) {
  require(c.absorber_fraction >= 0.0 && c.absorber_fraction <= 1.0,
          "with_absorber_fraction: must lie in [0, 1]");
  require(c.max_absorbers >= 1 && c.max_absorbers <= sim::kMaxAbsorbers,
          "max_absorbers: must lie in [1, " + std::to_string(sim::kMaxAbsorbers) + "]");
  require(c.ew_min > 0.0 && c.ew_max >= c.ew_min && c.ew_max <= 7.0,
          "ew_range: rest EW2796 must satisfy 0 < min <= max <= 7 Å");
  require(c.kinematics == sim::kKinematicsPaper || c.kinematics == sim::kKinematicsSky,
          "kinematics: must be 'paper' or 'sky'");
  require(c.blend_fraction >= 0.0 && c.blend_fraction <= 1.0, "blend_fraction: must lie in [0, 1]");
  require(c.resolution_min >= sim::kMinResolution && c.resolution_max >= c.resolution_min &&
              c.resolution_max <= 100000.0,
          "resolution_range: must satisfy 15000 <= min <= max <= 100000");
  require(c.wavelength_shift_kms >= 0.0 && c.wavelength_shift_kms <= 30.0,
          "wavelength_shift_kms: must lie in [0, 30]");
  require(c.err_misestimate >= 0.0 && c.err_misestimate <= 0.5,
          "err_misestimate: must lie in [0, 0.5]");
  require(c.correlated_noise >= 0.0 && c.correlated_noise <= 1.0,
          "correlated_noise: must lie in [0, 1]");
  require(c.cosmic_ray_rate >= 0.0 && c.cosmic_ray_rate <= sim::kMaxCosmicRays,
          "cosmic_ray_rate: must lie in [0, " + std::to_string(sim::kMaxCosmicRays) + "]");
  require(c.bal_fraction >= 0.0 && c.bal_fraction <= 1.0, "bal_fraction: must lie in [0, 1]");
  require(c.dla_rate >= 0.0 && c.dla_rate <= 4.0, "dla_rate: must lie in [0, 4]");
  // Below ~8 Å (330 km/s plus the LSF reach) components could fall off the arm.
  require(c.edge_margin >= 10.0 && c.edge_margin <= 100.0, "edge_margin: must lie in [10, 100] Å");
  // The sky kinematics reach 600 km/s (12 Å at the red end) plus the LSF.
  require(c.kinematics != sim::kKinematicsSky || c.edge_margin >= 15.0,
          "edge_margin: must be at least 15 Å with the sky kinematics");
  require(c.n_snr >= 1 && c.snr_values != nullptr, "snr: give at least one value");
  for (int i = 0; i < c.n_snr; ++i)
    require(c.snr_values[i] > 0.0 && std::isfinite(c.snr_values[i]) && c.snr_values[i] <= 1e6,
            "snr: values must be positive and finite (at most 1e6)");
  require(c.edge_snr_ratio >= 1.0 && c.edge_snr_ratio <= 100.0,
          "edge_snr_ratio: must lie in [1, 100]");
  require(c.edge_taper_pixels >= 0 && c.edge_taper_pixels <= 1000,
          "edge_taper_pixels: must lie in [0, 1000]");
  require(c.interloper_rate >= 0.0 && c.interloper_rate <= sim::kMaxInterlopers,
          "interloper_rate: must lie in [0, " + std::to_string(sim::kMaxInterlopers) + "]");
  require(c.continuum_error >= 0.0 && c.continuum_error <= 0.5,
          "continuum_error: must lie in [0, 0.5]");
  require(c.sky_residual >= 0.0 && c.sky_residual <= 100.0, "sky_residual: must lie in [0, 100]");
  require(c.bad_pixel_rate >= 0.0 && c.bad_pixel_rate <= 8.0, "bad_pixel_rate: must lie in [0, 8]");
  require(c.z_em_min > 0.0 && c.z_em_max >= c.z_em_min && c.z_em_max <= 7.0,
          "z_em_range: must satisfy 0 < min <= max <= 7");
}

void simulate_cpu(const sim::Config& cfg, std::uint64_t start, int n, float* flux, float* err,
                  float* clean, sim::Sightline* truth, int threads) {
  validate_config(cfg);
  if (n < 0) throw std::invalid_argument("n: must not be negative");
  const int nt = resolve_threads(threads);
  // The SNR profile depends on the pixel only: tabulate it once for the whole call.
  std::vector<float> shape(grid::kNPix);
  for (int p = 0; p < grid::kNPix; ++p)
    shape[p] = static_cast<float>(
        sim::snr_profile(grid::edge_distance(p), cfg.edge_snr_ratio, cfg.edge_taper_pixels));
  sim::Config c = cfg;
  c.snr_shape = shape.data();
  std::vector<Scratch> scratch(nt);
  parallel_for(n, nt, 8, [&](std::int64_t begin, std::int64_t end, int worker) {
    simulate_range(c, start, begin, end, &scratch[worker], flux, err, clean, truth);
  });
}

}  // namespace mgfast
