// The preprocessing pipeline as stages over single pixels or arms, written once for the CPU
// (preprocess.cpp loops over them) and CUDA (src/cuda/preprocess.cu launches them as kernels).
// Order: input validity -> (LSF degradation and) rebinning onto the grid -> per-arm coverage
// and continuum -> fill masked pixels -> summary.
#pragma once

#include <cstdint>

#include "continuum.hpp"
#include "flags.hpp"
#include "grid.hpp"
#include "hd.hpp"
#include "resample.hpp"

namespace mgfast::pipeline {

// Inputs of one batch, row-major host (or device) pointers.
struct Batch {
  int n_spec = 0;
  int n_in = 0;                  // input pixels per spectrum (kNPix when on_grid)
  bool on_grid = false;          // input already on the grid: no resampling (the fast path)
  const double* wave = nullptr;  // (n_in,) or (n_spec, n_in) wavelengths in vacuum Å, increasing
  bool wave_per_spectrum = false;
  const float* flux = nullptr;  // (n_spec, n_in)
  const float* err = nullptr;   // optional (n_spec, n_in): 1-sigma errors, or ivar if err_is_ivar
  bool err_is_ivar = false;
  const std::uint32_t* mask = nullptr;   // optional (n_spec, n_in) bit mask
  std::uint32_t bad_bits = 0xFFFFFFFFu;  // mask bits that make a pixel bad
  const double* r_in = nullptr;  // optional (n_spec,) resolving power of the input; null = 20000
  const double* z_em = nullptr;  // optional (n_spec,) quasar redshifts (NaN: unknown): the
                                 // continuum fit treats their Lyman-alpha forest (continuum.hpp)
};

MGFAST_HD double z_em_of(const Batch& b, int s) { return b.z_em ? b.z_em[s] : NAN; }

struct Options {
  bool normalise = false;       // fit and divide by a continuum (flux not yet normalised)
  double min_pixel_good = 0.5;  // output pixel needs this fraction covered by good input
  double min_arm_good = 0.5;    // an arm with fewer good pixels than this fraction is missing
  continuum::Params continuum{};
};

// Outputs, row-major.
struct Output {
  float* flux = nullptr;             // (n_spec, kNPix) normalised flux, 1 where masked
  float* ivar = nullptr;             // (n_spec, kNPix) inverse variance, 0 where masked
  std::uint8_t* pixmask = nullptr;   // (n_spec, kNPix) flags::kPix* bits
  std::uint32_t* flags = nullptr;    // (n_spec,) flags::k* bits
  std::int32_t* n_masked = nullptr;  // (n_spec, kNumArms) masked pixels per arm
  float* continuum = nullptr;        // optional (n_spec, kNPix): the fitted continuum (1 if none)
};

MGFAST_HD double sigma_for(const Batch& b, int s) {
  const double r = b.r_in ? b.r_in[s] : grid::kResolvingPower;
  return resample::lsf_sigma_ln(r, grid::kResolvingPower);
}

// Stage 1, per input pixel j of spectrum s: validity and variance.
MGFAST_HD void stage_input(const Batch& b, int s, int j, std::uint8_t* good, double* var) {
  const long long k = static_cast<long long>(s) * b.n_in + j;
  const bool ok =
      resample::input_pixel(b.flux[k], b.err ? b.err[k] : 1.0f, b.err != nullptr, b.err_is_ivar,
                            b.mask ? b.mask[k] : 0u, b.bad_bits, var + j);
  good[j] = ok ? 1 : 0;
}

// Stage 2, per output pixel p: bring the input onto the grid and classify. Off the grid the input
// is rebinned flux-conservingly; when it is finer than R = 20000 (sigma > 0, ln λ) it is degraded
// and rebinned in one linear step so that the propagated variance stays exact. edge and lnedge
// hold the n_in + 1 input pixel edges in Å and ln λ (lnedge only needed when sigma > 0). Writes
// flux, ivar (0 where unknown) and pixmask. lsf_cache (or null) carries the LSF's edge terms from
// one output pixel to the next when a caller walks a spectrum's pixels in order, and cursor (or
// null; 0 before the spectrum's first pixel) the first input pixel each reads
// (resample::first_pixel).
MGFAST_HD void stage_rebin(const Batch& b, const Options& o, int p, double sigma,
                           const double* edge, const double* lnedge, const float* flux,
                           const double* var, const std::uint8_t* good, float* out_flux,
                           float* out_ivar, std::uint8_t* out_mask,
                           resample::LsfEdgeCache* lsf_cache = nullptr, int* cursor = nullptr) {
  double v = 0.0;
  if (b.on_grid) {
    out_flux[p] = flux[p];
    v = var[p];
    out_mask[p] = good[p] ? 0 : flags::kPixBadInput;
  } else {
    const double lo = grid::pixel_lo_edge(p), hi = grid::pixel_hi_edge(p);
    const resample::RebinResult r =
        sigma > resample::kMinLsfSigmaPixels * grid::kDlnLambda
            ? resample::lsf_rebin_pixel(log(lo), log(hi), sigma, b.n_in, lnedge, flux, var, good,
                                        lsf_cache, cursor)
            : resample::rebin_pixel(lo, hi, b.n_in, edge, flux, var, good, cursor);
    out_flux[p] = r.flux;
    v = r.var;
    out_mask[p] = r.covered < o.min_pixel_good ? flags::kPixNotCovered
                  : r.good < o.min_pixel_good  ? flags::kPixBadInput
                                               : 0;
  }
  out_ivar[p] = (b.err && v > 0.0) ? static_cast<float>(1.0 / v) : 0.0f;
}

// Degradation alone on the input grid (for lsf_degrade): input pixel j smoothed by a Gaussian of
// width sigma (ln λ). Neighbouring outputs are correlated; svar is each one's own variance.
MGFAST_HD void stage_smooth(int n_in, int j, const double* lnedge, const float* flux,
                            const double* var, const std::uint8_t* good, double sigma, float* sflux,
                            double* svar, std::uint8_t* sgood) {
  sgood[j] =
      resample::lsf_smooth_pixel(j, n_in, lnedge, flux, var, good, sigma, sflux + j, svar + j) ? 1
                                                                                               : 0;
}

// Stage 3, per arm a of one spectrum (pointers to that spectrum's rows): drop an arm with too
// little data, else fit and divide by the continuum when asked (basis: the arm's spline basis,
// continuum::fill_basis, or null; z_em: the quasar's redshift, NaN where unknown). Returns the
// flags to OR in.
MGFAST_HD std::uint32_t stage_arm(const Options& o, bool have_err, int a, float* flux, float* ivar,
                                  std::uint8_t* mask, float* cont, std::uint8_t* work,
                                  const continuum::Basis* basis = nullptr, double z_em = NAN) {
  const int p0 = grid::arm_start(a), n = grid::arm_npix(a);
  int n_good = 0;
  for (int i = 0; i < n; ++i) {
    work[i] = mask[p0 + i] == 0 ? 1 : 0;
    n_good += work[i];
  }
  if (n_good < o.min_arm_good * n) {
    for (int i = 0; i < n; ++i) mask[p0 + i] |= flags::kPixArmMissing;
    return flags::arm_missing(a);
  }
  if (!o.normalise) return 0u;
  // work doubles as the good-pixel input; fit_arm needs a second scratch row for its own state,
  // which is the continuum row's neighbour in work (n bytes further on).
  const continuum::Forest forest =
      continuum::forest_of_arm(z_em, n, grid::arm_lo(a), grid::kDlnLambda);
  if (!continuum::fit_arm(n, flux + p0, have_err ? ivar + p0 : nullptr, work, work + n, cont + p0,
                          o.continuum, basis, forest.end > forest.begin ? &forest : nullptr)) {
    for (int i = 0; i < n; ++i) {
      mask[p0 + i] |= flags::kPixContinuumFailed;
      cont[p0 + i] = 1.0f;
    }
    return flags::kContinuumFailed;
  }
  std::uint32_t f = 0u;
  for (int i = 0; i < n; ++i) {
    if (work[n + i] & continuum::kUnsupported) {  // no trustworthy continuum here: masked
      if (work[i]) f = flags::kContinuumFailed;   // (a pixel masked already says why)
      mask[p0 + i] |= flags::kPixContinuumFailed;
      cont[p0 + i] = 1.0f;
      continue;
    }
    const float c = cont[p0 + i];
    flux[p0 + i] /= c;
    ivar[p0 + i] *= c * c;
    if (work[n + i] & continuum::kSpike) mask[p0 + i] |= flags::kPixSpike;
  }
  return f;
}

// Stage 4, per output pixel: masked pixels carry the continuum value 1 and no weight.
MGFAST_HD void stage_fill(int p, float* flux, float* ivar, std::uint8_t* mask) {
  if (mask[p] == 0 && !(is_finite(flux[p]) && is_finite(ivar[p]))) mask[p] = flags::kPixBadInput;
  if (mask[p] != 0) {
    flux[p] = 1.0f;
    ivar[p] = 0.0f;
  }
}

// Stage 5, per spectrum s: masked counts per arm and the summary flags.
MGFAST_HD std::uint32_t stage_summary(const Batch& b, int s, const std::uint8_t* mask,
                                      std::int32_t* n_masked) {
  std::uint32_t f = 0u;
  if (b.r_in && b.r_in[s] < grid::kResolvingPower * (1.0 - 1e-9)) f |= flags::kLowResolution;
  if (!b.err) f |= flags::kNoErrors;
  int total = 0;
  for (int a = 0; a < grid::kNumArms; ++a) {
    int c = 0;
    for (int i = 0; i < grid::arm_npix(a); ++i) c += mask[grid::arm_start(a) + i] != 0;
    n_masked[a] = c;
    total += c;
  }
  return total == grid::kNPix ? (f | flags::kAllMasked) : f;
}

}  // namespace mgfast::pipeline
