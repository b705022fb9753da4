// The simulator's physics, shared by the CPU and CUDA drivers: drawing a sightline (absorbers,
// interlopers, forest, quasar continuum, SNR), solving each MgII absorber's column densities for
// its requested EW2796, rendering Voigt profiles through the R = 20000 LSF onto the grid's pixels,
// and noise. Every random draw comes from the counter-based generator in rng.hpp, keyed by
// (seed, spectrum index, stream), so a spectrum never depends on batch, thread or device.
// docs/simulator.md gives every distribution and where it comes from.
//
// Split by stage: simulate_types.hpp (types, constants, helpers), simulate_absorbers.hpp
// (MgII kinematics and the EW solve), simulate_lines.hpp (the sightline and its rendering), and
// this file (continuum, defects, noise and the per-pixel stages the drivers call).
#pragma once

#include "simulate_lines.hpp"

namespace mgfast::sim {

// ---- continuum, defects, noise ----------------------------------------------------------------

// Broad emission lines of the quasar continuum: rest λ (Å), peak relative to the power law,
// FWHM (km/s), from composite spectra (Vanden Berk et al. 2001), rounded.
MGFAST_HD void emission_line(int i, double* lam, double* peak, double* fwhm) {
  const double t[10][3] = {{1215.67, 3.0, 4000.0}, {1240.14, 0.5, 4000.0}, {1399.8, 0.25, 5000.0},
                           {1549.06, 1.2, 4500.0}, {1908.73, 0.5, 5000.0}, {2326.0, 0.08, 4000.0},
                           {2798.75, 0.6, 4000.0}, {3727.0, 0.05, 3000.0}, {4341.7, 0.2, 3500.0},
                           {4862.7, 0.5, 4000.0}};
  *lam = t[i][0];
  *peak = t[i][1];
  *fwhm = t[i][2];
}

// Quasar continuum at grid pixel p: power law f_λ ∝ λ^α (1 at 5000 Å) plus Gaussian broad
// emission lines at z_em, each scaled by the sightline's log-normal factor.
MGFAST_HD double quasar_continuum(const Sightline& sl, int p) {
  const double lam = grid::wavelength(p);
  double c = pow(lam / 5000.0, static_cast<double>(sl.alpha));
  for (int i = 0; i < kNumEmissionLines; ++i) {
    double rest, peak, fwhm;
    emission_line(i, &rest, &peak, &fwhm);
    const double mu = rest * (1.0 + sl.z_em);
    const double sig = mu * fwhm / voigt::kCKms / resample::kFwhmPerSigma;
    const double d = (lam - mu) / sig;
    if (d * d < 50.0) c += peak * sl.line_scale[i] * pow(mu / 5000.0, sl.alpha) * exp(-0.5 * d * d);
  }
  return c;
}

// Smooth multiplicative continuum error of pixel p: per arm a cubic (Legendre P0..P3) in the arm
// coordinate, coefficients drawn per sightline (a continuum fit off by a few per cent).
MGFAST_HD double continuum_error(const Sightline& sl, int p) {
  const int arm = grid::arm_of_pixel(p);
  const double t = 2.0 * (p - grid::arm_start(arm)) / (grid::arm_npix(arm) - 1.0) - 1.0;
  const float* c = sl.cont_err[arm];
  return 1.0 + c[0] + c[1] * t + c[2] * 0.5 * (3 * t * t - 1) +
         c[3] * 0.5 * (5 * t * t * t - 3 * t);
}

// Bright night-sky lines in the arms (vacuum Å, approximate; Osterbrock et al. 1996): residuals of
// their subtraction are narrow features of either sign.
MGFAST_HD double sky_line(int i) {
  switch (i) {
    case 0:
      return 4047.7;  // Hg I (light pollution)
    case 1:
      return 5578.9;  // [OI]
    case 2:
      return 6302.0;  // [OI]
    case 3:
      return 6365.5;  // [OI]
    case 4:
      return 6259.7;  // OH
    case 5:
      return 6289.2;  // OH
    case 6:
      return 6467.2;  // OH
    case 7:
      return 6499.0;  // OH
    case 8:
      return 6555.4;  // OH
    case 9:
      return 6606.0;  // OH
    case 10:
      return 6759.6;  // OH
    default:
      return 5462.3;  // Hg I
  }
}
// SNR relative to the arm centre at distance d (pixels) from the nearer end, with the profile
// shape drawn per spectrum (random_edges): 0 the cosine taper of snr_profile, 1 linear, 2 an
// exponential approach (1 − e^(−3 d / taper), reaching 95 % at `taper`).
MGFAST_HD double snr_profile_kind(int d, double edge_ratio, int taper, int kind) {
  if (kind == 0) return snr_profile(d, edge_ratio, taper);
  const double lo = 1.0 / edge_ratio;
  if (kind == 1) return d >= taper ? 1.0 : lo + (1.0 - lo) * static_cast<double>(d) / taper;
  return lo + (1.0 - lo) * (1.0 - exp(-3.0 * static_cast<double>(d) / taper));
}

// BAL troughs at the observed λ (docs/simulator.md): CIV and SiIV (and AlIII, MgII for a LoBAL)
// absorbed between bal_v1 and bal_v2 km/s blueward of the quasar's emission, with soft edges.
MGFAST_HD double bal_transmission(const Sightline& sl, double lam) {
  if (sl.bal_depth <= 0.0f) return 1.0;
  const double rest[4] = {1549.06, 1396.76, 1857.4, 2799.1};
  const double depth[4] = {1.0, 0.7, 0.6, 0.6};
  double t = 1.0;
  for (int i = 0; i < (sl.bal_lo ? 4 : 2); ++i) {
    const double v = voigt::kCKms * log(rest[i] * (1.0 + sl.z_em) / lam);  // outflow velocity
    if (v < sl.bal_v1 - 2000.0 || v > sl.bal_v2 + 2000.0) continue;
    const double box =
        0.25 * (1.0 + tanh((v - sl.bal_v1) / 400.0)) * (1.0 + tanh((sl.bal_v2 - v) / 400.0));
    t *= 1.0 - sl.bal_depth * depth[i] * box;
  }
  return t;
}

// Telluric absorption in the red arm: the O2 γ band (lines every 1.9 Å over 6277-6310 Å) and weak
// H2O lines (6470-6580 Å), narrow Gaussians (0.6 pixel) of depths up to 25 % and 10 % scaled by
// the sightline's strength (airmass and water vapour). An approximation of the bands' placement
// and strength, not a line list.
MGFAST_HD double telluric_transmission(const Sightline& sl, double lam) {
  if (sl.telluric <= 0.0f || lam < 6270.0 || lam > 6590.0) return 1.0;
  const double width = lam / 20000.0 * 0.6;
  double t = 1.0;
  for (int i = 0; i < 18; ++i) {
    const double c = 6277.0 + 1.9 * i;
    const double d = (lam - c) / width;
    if (d * d < 30.0)
      t *= 1.0 - 0.25 * sl.telluric * (0.5 + 0.5 * sin(1.7 * i)) * exp(-0.5 * d * d);
    const double c2 = 6470.0 + 6.3 * i;
    const double d2 = (lam - c2) / width;
    if (d2 * d2 < 30.0)
      t *= 1.0 - 0.10 * sl.telluric * (0.5 + 0.5 * cos(2.3 * i)) * exp(-0.5 * d2 * d2);
  }
  return t;
}

// Stage 1, per spectrum: draw the sightline and build its sorted line list. Returns the number of
// lines (at most kMaxLines).
MGFAST_HD int stage_plan(const Config& cfg, std::uint64_t index, Sightline* sl, Line* lines) {
  plan_sightline(cfg, index, sl);
  return build_lines(cfg, index, sl, lines);
}

// Stage 2, per spectrum: the noiseless transmission of every pixel (render_spectrum), the truth a
// perfect detector sees. Stage 3, per grid pixel: continuum, defects and noise on top of it, from
// the pixel's standard normal z (normal_pair). Writes the flux and its 1-sigma error (0 for a bad
// pixel, whose flux is 0).
MGFAST_HD void stage_pixel(const Config& cfg, const Sightline& sl, const float* trans, int p,
                           float z, float* flux, float* err) {
  double t = trans[p];
  if (sl.bal_depth > 0.0f || sl.telluric > 0.0f) {
    const double lam = grid::wavelength(p);
    t *= bal_transmission(sl, lam) * telluric_transmission(sl, lam);
  }
  const double cont = cfg.unnormalised ? quasar_continuum(sl, p) : 1.0;
  double f = cont * t;
  if (!cfg.unnormalised && cfg.continuum_error > 0.0) f *= continuum_error(sl, p);
  const int arm = grid::arm_of_pixel(p);
  double shape;
  if (cfg.random_edges)
    shape = sl.snr_arm[arm] *
            snr_profile_kind(grid::edge_distance(p), sl.edge_ratio, sl.edge_taper, sl.edge_kind);
  else
    shape = cfg.snr_shape
                ? cfg.snr_shape[p]
                : snr_profile(grid::edge_distance(p), cfg.edge_snr_ratio, cfg.edge_taper_pixels);
  const double sigma = cont / (sl.snr * shape);
  if (cfg.sky_residual > 0.0) {
    const double lam = grid::wavelength(p);
    for (int i = 0; i < kNumSkyLines; ++i) {
      const double dx = (lam - sky_line(i)) / (lam * grid::kDlnLambda);  // pixels
      if (dx * dx < 16.0) f += sl.sky[i] * sigma * exp(-0.5 * dx * dx / 0.49);
    }
  }
  if (cfg.noise) f += sigma * static_cast<double>(z);
  for (int i = 0; i < sl.n_cr; ++i)  // cosmic rays: unmasked, the error array does not know
    if (p >= sl.cr_start[i] && p < sl.cr_start[i] + sl.cr_len[i]) f += sl.cr_amp[i] * sigma;
  double e = sigma * sl.err_scale[arm];
  for (int i = 0; i < sl.n_bad; ++i)
    if (p >= sl.bad_start[i] && p < sl.bad_start[i] + sl.bad_len[i]) {
      f = 0.0;
      e = 0.0;
    }
  flux[p] = static_cast<float>(f);
  err[p] = static_cast<float>(e);
}

// Stage 3 for the pair of grid pixels (2k, 2k + 1), which share one Philox call and one
// Box-Muller transform (rng.hpp): the CUDA driver's unit of work.
constexpr int kNPixelPairs = (grid::kNPix + 1) / 2;

// Noise correlated between neighbours, as resampling makes it: pixel p's normal mixed with pixel
// p + 1's, (z_p + ρ z_{p+1}) / √(1 + ρ²), still of unit variance.
MGFAST_HD float correlate(float z, float z_next, float rho) {
  const double r = rho;
  return static_cast<float>((static_cast<double>(z) + r * static_cast<double>(z_next)) /
                            sqrt(1.0 + r * r));
}

MGFAST_HD void stage_pixel_pair(const Config& cfg, std::uint64_t index, const Sightline& sl,
                                const float* trans, int k, float* flux, float* err) {
  float z[3] = {0.0f, 0.0f, 0.0f};
  if (cfg.noise) {
    rng::normal_pair(cfg.seed, index, kStreamNoise, k, &z[0], &z[1]);
    if (sl.rho > 0.0f) {
      float unused = 0.0f;
      if (k + 1 < kNPixelPairs)
        rng::normal_pair(cfg.seed, index, kStreamNoise, k + 1, &z[2], &unused);
      z[0] = correlate(z[0], z[1], sl.rho);
      z[1] = correlate(z[1], z[2], sl.rho);
    }
  }
  for (int h = 0; h < 2; ++h)
    if (2 * k + h < grid::kNPix) stage_pixel(cfg, sl, trans, 2 * k + h, z[h], flux, err);
}

}  // namespace mgfast::sim
