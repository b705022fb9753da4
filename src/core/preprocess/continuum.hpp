// Continuum fitting of one arm, shared by the CPU and CUDA paths: a penalised cubic B-spline
// (P-spline, Eilers & Marx 1996) with iterative asymmetric sigma clipping. Absorption (pixels
// well below the fit) is rejected and the rejection grown by a few pixels, so that a strong
// MgII doublet is bridged rather than followed; emission lines, which are broad (FWHM >~ 2000
// km/s, >~ 130 pixels), are followed because the knots are closer than that. docs/preprocessing.md
// says where this fails.
#pragma once

#include <cmath>
#include <cstdint>

#include "hd.hpp"

namespace mgfast::continuum {

// Most B-spline coefficients per arm; bounds the fixed-size work arrays (about 10 kB per fit).
constexpr int kMaxBasis = 256;

struct Params {
  double knot_spacing = 40.0;  // pixels between knots (40 pixels = 600 km/s)
  double penalty = 1.0;   // second-difference penalty per data point per knot, at SNR 10 per pixel;
                          // it scales as (10 / SNR)^2, so noisy arms are smoothed harder and clean
                          // ones follow the emission lines more closely
  double clip_low = 2.5;  // reject pixels this many sigma below the fit (absorption)
  double clip_high = 3.0;  // ... and this many above (noise spikes, residuals)
  int grow = 4;            // rejected absorption grows by this many pixels each side
  int max_iter = 15;
  double min_fraction = 0.2;  // fewer retained pixels than this fraction of the arm: failure;
                              // also fewer supported pixels (below) than this fraction
  // Local support: the continuum at a pixel is trusted only where the final fit used at least
  // min_support of the pixels on each side of it within support_knots knot spacings, is
  // positive, and lies at least min_cont_snr sigma above zero (a pixel whose continuum is below its
  // own noise holds no absorption to find: below a Lyman limit, in a saturated trough). Elsewhere
  // the pixel is masked (kUnsupported, PixelFlag CONTINUUM_FAILED) and the rest of the arm is kept:
  // a dense Lyman-alpha forest in half an arm no longer takes the other half with it.
  double support_knots = 6.0;
  double min_support = 0.1;
  double min_cont_snr = 1.0;
  double sigma_floor = 0.01;  // clipping scale never below this fraction of the continuum, so
                              // that noiseless or very high-SNR spectra do not clip everything
  double spike_sigma = 10.0;  // a pixel this many sigma above the median of its neighbours is a
                              // spike (cosmic ray, hot pixel): left out of the first fit and, if
                              // the final fit also clips it, masked; 0 switches this off
  // The Lyman-alpha forest of a quasar of known redshift (Forest, below): the penalty on the
  // spline's curvature there is this many times the one elsewhere, so that the fit averages over
  // many forest lines (a few thousand km/s) instead of following them.
  double forest_penalty = 30.0;
};

// The Lyman-alpha forest, where the quasar's redshift is known: rest wavelengths kForestRestLo to
// kForestRestHi (the range of BOSS and DESI forest analyses, clear of the Lyman-beta forest and of
// the Lyman-alpha emission line's core). There the flux is the continuum times a transmission that
// is mostly absorbed, and asymmetric clipping finds no continuum between the lines: the fit sits
// low, or keeps too few pixels and masks the forest (CONTINUUM_FAILED). Instead every forest pixel
// enters the fit divided by the mean transmission at its redshift, mean_forest_flux (mean-flux
// regulation: Lee, Suzuki & Spergel 2012), unclipped (spikes aside), with a stiffer spline
// (Params::forest_penalty): the continuum is then the one whose forest has the sky's mean flux.
constexpr double kLyaRest = 1215.67;
constexpr double kForestRestLo = 1040.0;
constexpr double kForestRestHi = 1200.0;

// The mean transmitted flux of the Lyman-alpha forest at observed wavelength lam (Å):
// exp(-tau_eff), tau_eff = 0.0018 (1 + z)^3.92 (Faucher-Giguere et al. 2008), z = lam / 1215.67
// - 1.
constexpr double kTauEffA = 0.0018, kTauEffB = 3.92;
MGFAST_HD double mean_forest_flux(double lam) {
  return exp(-kTauEffA * pow(lam / kLyaRest, kTauEffB));
}

// The forest pixels of an arm: [begin, end) of its n pixels, the first at wavelength lo (Å), the
// grid's step dln in ln(lambda). Empty (begin == end) where the quasar's redshift is unknown.
struct Forest {
  int begin = 0, end = 0;
  double lo = 0.0, dln = 0.0;
  MGFAST_HD bool contains(int i) const { return i >= begin && i < end; }
  MGFAST_HD double wavelength(int i) const { return lo * exp(i * dln); }
};

// The Forest of an arm of n pixels from wavelength lo in steps dln, for a quasar at z_em (NaN:
// none).
MGFAST_HD Forest forest_of_arm(double z_em, int n, double lo, double dln) {
  Forest f;
  f.lo = lo, f.dln = dln;
  if (!(z_em >= 0.0)) return f;  // NaN: unknown
  auto pixel = [&](double rest) {
    const double x = ceil(log(rest * (1.0 + z_em) / lo) / dln);
    return x < 0.0 ? 0 : (x > n ? n : static_cast<int>(x));
  };
  f.begin = pixel(kForestRestLo);
  f.end = pixel(kForestRestHi);
  if (f.end < f.begin) f.end = f.begin;
  return f;
}

// Number of B-spline coefficients used for an arm of n pixels.
MGFAST_HD int n_basis(int n, double knot_spacing) {
  int nseg = static_cast<int>(ceil((n - 1) / knot_spacing));
  if (nseg < 1) nseg = 1;
  return nseg + 3;
}

// Uniform cubic B-spline basis at x (pixels), given 1 / (knot spacing h): segment index and the 4
// non-zero values.
MGFAST_HD int bspline_basis(double x, double inv_h, int nseg, double b[4]) {
  const double xs = x * inv_h;
  int s = static_cast<int>(xs);
  if (s > nseg - 1) s = nseg - 1;
  if (s < 0) s = 0;
  const double t = xs - s, u = 1.0 - t;
  constexpr double k6 = 1.0 / 6.0;  // a product, not a division, per value
  const double t2 = t * t, t3 = t2 * t;
  b[0] = u * u * u * k6;
  b[1] = (3.0 * t3 - 6.0 * t2 + 4.0) * k6;
  b[2] = (-3.0 * t3 + 3.0 * t2 + 3.0 * t + 1.0) * k6;
  b[3] = t3 * k6;
  return s;
}

// The basis of every pixel of an arm of n pixels (bspline_basis at each i): it depends only on n
// and the knot spacing, so the CPU computes it once per arm and every fit reads it (values[4 i
// ... 4 i + 3] and segment[i]); fit_arm computes it as it goes where there is none (the GPU).
struct Basis {
  const double* values = nullptr;
  const int* segment = nullptr;
};

// The spline's segments and 1 / (knot spacing) for an arm of n pixels, as fit_arm uses them.
MGFAST_HD int spline_segments(int n, double knot_spacing, double* inv_h) {
  const int nseg = n_basis(n, knot_spacing) - 3;
  *inv_h = n > 1 ? nseg / static_cast<double>(n - 1) : 0.0;
  return nseg;
}

// Fills values (4 n) and segment (n) for Basis.
inline void fill_basis(int n, double knot_spacing, double* values, int* segment) {
  double inv_h = 0.0;
  const int nseg = spline_segments(n, knot_spacing, &inv_h);
  for (int i = 0; i < n; ++i) segment[i] = bspline_basis(i, inv_h, nseg, values + 4 * i);
}

// bspline_basis at pixel i, from the table when there is one.
MGFAST_HD int basis_at(int i, double inv_h, int nseg, const Basis* table, double b[4]) {
  if (!table) return bspline_basis(i, inv_h, nseg, b);
  const double* v = table->values + 4 * i;
  b[0] = v[0], b[1] = v[1], b[2] = v[2], b[3] = v[3];
  return table->segment[i];
}

// Solves the symmetric positive-definite banded system (half bandwidth 3, band[i][k] = A[i][i+k])
// in place by LDL^T; the solution overwrites rhs. Returns false if a pivot is not positive.
MGFAST_HD bool solve_band4(int m, double (*band)[4], double* rhs) {
  for (int i = 0; i < m; ++i) {
    // band[i][0] becomes d_i; band[i][k] (k>0) becomes l_{i+k,i}.
    for (int k = 1; k <= 3 && i - k >= 0; ++k) {
      const int j = i - k;  // previous row, already factored
      const double lij = band[j][k];
      band[i][0] -= lij * lij * band[j][0];
      for (int q = 1; q <= 3 - k; ++q) band[i][q] -= lij * band[j][k + q] * band[j][0];
    }
    if (!(band[i][0] > 0.0)) return false;
    for (int q = 1; q <= 3 && i + q < m; ++q) band[i][q] /= band[i][0];
  }
  for (int i = 0; i < m; ++i)
    for (int k = 1; k <= 3 && i - k >= 0; ++k) rhs[i] -= band[i - k][k] * rhs[i - k];
  for (int i = 0; i < m; ++i) rhs[i] /= band[i][0];
  for (int i = m - 1; i >= 0; --i)
    for (int k = 1; k <= 3 && i + k < m; ++k) rhs[i] -= band[i][k] * rhs[i + k];
  return true;
}

// Whether residual d = flux - continuum lies beyond k clipping scales, the scale being the
// pixel's error (or the arm's scatter, global_var, without errors) with sigma_floor * cont added in
// quadrature: d^2 > k^2 (1 / ivar + f^2), written without a division or a square root (a pixel
// with ivar 0 is never beyond).
MGFAST_HD bool beyond(double d, double k2, const float* ivar, int i, double global_var, double cont,
                      const Params& p) {
  const double f = p.sigma_floor * cont;
  if (ivar) {
    const double iv = ivar[i];
    return d * d * iv > k2 * (1.0 + f * f * iv);
  }
  return d * d > k2 * (global_var + f * f);
}

// Spikes: cosmic rays, hot pixels and sky-subtraction residuals that the error array does not
// know, 1-3 pixels wide and of any height. A least-squares fit through them sits far above the
// continuum, and the asymmetric clipping then rejects the real continuum as "absorption" (with 1 %
// of the pixels at 100 times the continuum every arm failed). So they are found before the first
// fit: pixels far above the median of their neighbours (which a run of up to kSpikeHalfWindow
// spikes does not move) and far above the local upper level too, kSpikeQuantile of the flux
// within kSpikeLevelHalfWindow pixels (so that a pixel of continuum between absorption lines, or
// a transmission peak of the Lyman-alpha forest, which reach the continuum and no higher, is not
// one, even on top of an emission line).

// Bits of fit_arm's work bytes: kUse the mask an iteration fits, kLow and kNear rejected
// absorption and its neighbours, kPrev the mask the previous iteration fitted, kSpike a spike (on
// return from a successful fit: a spike to mask).
constexpr std::uint8_t kUse = 1, kLow = 2, kNear = 4, kPrev = 8, kSpike = 16;
constexpr std::uint8_t kCandidate = 32;    // mark_spikes: a pixel that might be a spike
constexpr std::uint8_t kUnsupported = 64;  // fit_arm's result: no trustworthy continuum here
// Neighbours each side that a pixel is compared with (the window shifts at the arm's ends).
constexpr int kSpikeHalfWindow = 3;
// The local upper level: this quantile of the good pixels' flux within kSpikeLevelHalfWindow
// pixels either side (a knot spacing; the window shifts at the arm's ends). Spikes, a few per cent
// of the pixels at most, do not reach it.
constexpr double kSpikeQuantile = 0.9;
constexpr int kSpikeLevelHalfWindow = 40;

// The k-th smallest of a[0 .. m) (0-based), reordering a: Hoare's selection, iterative.
MGFAST_HD float select_kth(float* a, int m, int k) {
  int lo = 0, hi = m - 1;
  while (lo < hi) {
    const float pivot = a[lo + (hi - lo) / 2];
    int i = lo, j = hi;
    while (i <= j) {
      while (a[i] < pivot) ++i;
      while (a[j] > pivot) --j;
      if (i <= j) {
        const float t = a[i];
        a[i] = a[j], a[j] = t;
        ++i, --j;
      }
    }
    if (k <= j) {
      hi = j;
    } else if (k >= i) {
      lo = i;
    } else {
      break;
    }
  }
  return a[k];
}

// The median of a few values (sorting them in place).
MGFAST_HD double median_small(double* a, int m) {
  for (int i = 1; i < m; ++i)
    for (int j = i; j > 0 && a[j - 1] > a[j]; --j) {
      const double t = a[j];
      a[j] = a[j - 1], a[j - 1] = t;
    }
  return (m & 1) ? a[m / 2] : 0.5 * (a[m / 2 - 1] + a[m / 2]);
}

// Noise variance of an arm without errors, from its first differences: the median of their
// squares over 2 x 0.45494 (the median of chi-squared with one degree of freedom), which spikes
// and lines barely move. scratch holds n floats. 0 when there are too few pairs.
MGFAST_HD double difference_noise_var(int n, const float* flux, const std::uint8_t* good,
                                      float* scratch) {
  int m = 0;
  for (int i = 0; i + 1 < n; ++i)
    if (good[i] && good[i + 1]) {
      const float d = flux[i + 1] - flux[i];
      scratch[m++] = d * d;
    }
  if (m < 8) return 0.0;
  return select_kth(scratch, m, m / 2) / (2.0 * 0.45494);
}

// The median flux of the good neighbours of pixel i (kSpikeHalfWindow each side, the window
// shifted at the arm's ends) and their noise variance: the median of their variances (noise_var
// without errors). False when fewer than 3 neighbours are good (or have errors).
MGFAST_HD bool neighbourhood(int n, int i, const float* flux, const float* ivar,
                             const std::uint8_t* good, double noise_var, double* med, double* var) {
  constexpr int kW = 2 * kSpikeHalfWindow;
  int lo = i - kSpikeHalfWindow;
  if (lo > n - 1 - kW) lo = n - 1 - kW;
  if (lo < 0) lo = 0;
  double f[kW], v[kW];
  int nf = 0, nv = 0;
  for (int j = lo; j <= lo + kW && j < n; ++j) {
    if (j == i || !good[j]) continue;
    f[nf++] = flux[j];
    if (ivar && ivar[j] > 0.0f) v[nv++] = 1.0 / static_cast<double>(ivar[j]);
  }
  if (nf < 3 || (ivar && nv < 3)) return false;
  *med = median_small(f, nf);
  *var = ivar ? median_small(v, nv) : noise_var;
  return true;
}

// Whether flux f lies more than p.spike_sigma sigma above level: sigma^2 = var plus
// (sigma_floor level)^2.
MGFAST_HD bool far_above(double f, double level, double var, const Params& p) {
  const double d = f - level, fl = p.sigma_floor * level;
  return d > 0.0 && d * d > p.spike_sigma * p.spike_sigma * (var + fl * fl);
}

// A bound that every spike away from the arm's ends passes, computed without a branch (so that it
// vectorises): more than spike_sigma sigma above the lowest good neighbour (scratch: the flux, bad
// pixels at +huge), sigma no less than that of the neighbour with the largest ivar (inv_noise_var
// without errors; a bad neighbour's ivar only loosens the bound). Sets kCandidate in work.
template <bool kErr>
MGFAST_HD void spike_candidates(int n, const float* flux, const float* ivar,
                                const std::uint8_t* good, const float* scratch, float inv_noise_var,
                                float k2, std::uint8_t* work) {
  constexpr int h = kSpikeHalfWindow;
  for (int i = h; i < n - h; ++i) {
    float mn = scratch[i - 1], iv = kErr ? ivar[i - 1] : inv_noise_var;
    for (int k = 1; k <= h; ++k) {
      mn = scratch[i - k] < mn ? scratch[i - k] : mn;
      mn = scratch[i + k] < mn ? scratch[i + k] : mn;
      if (kErr) {
        iv = ivar[i - k] > iv ? ivar[i - k] : iv;
        iv = ivar[i + k] > iv ? ivar[i + k] : iv;
      }
    }
    const float e = flux[i] - mn;
    const bool c = (good[i] != 0) & (e > 0.0f) & (e * e * iv > k2);
    work[i] = static_cast<std::uint8_t>(work[i] | (c ? kCandidate : 0));
  }
}

// Marks the spikes among an arm's good pixels: more than p.spike_sigma sigma (their
// neighbourhood's) above both the median of their neighbours and the local upper level. Their
// work byte becomes kSpike, so that the first fit leaves them out. scratch holds n floats. A cheap
// bound that every spike passes (spike_candidates) leaves the medians to the few pixels that might
// be one, and the upper level to those that stand out from their neighbours. Returns how many it
// marked.
MGFAST_HD int mark_spikes(int n, const float* flux, const float* ivar, const std::uint8_t* good,
                          std::uint8_t* work, double noise_var, float* scratch, const Params& p) {
  constexpr float kHuge = 3.0e38f;
  constexpr int h = kSpikeHalfWindow;
  if (!ivar && !(noise_var > 0.0)) return 0;
  for (int i = 0; i < n; ++i) {
    const float f = flux[i];  // loaded whatever good says, so that the loop vectorises
    scratch[i] = good[i] ? f : kHuge;
  }
  // (a little below the exact bound, so that float rounding cannot drop a spike)
  const float k2 = static_cast<float>(0.99 * p.spike_sigma * p.spike_sigma);
  if (ivar) {
    spike_candidates<true>(n, flux, ivar, good, scratch, 0.0f, k2, work);
  } else {
    spike_candidates<false>(n, flux, ivar, good, scratch, static_cast<float>(1.0 / noise_var), k2,
                            work);
  }
  int marked = 0;
  double med = 0.0, var = 0.0;
  for (int i = 0; i < n; ++i) {
    if (!((work[i] & kCandidate) || i < h || i >= n - h)) continue;
    work[i] = static_cast<std::uint8_t>(work[i] & ~kCandidate);
    if (good[i] && neighbourhood(n, i, flux, ivar, good, noise_var, &med, &var) &&
        far_above(flux[i], med, var, p)) {
      work[i] = kSpike;
      ++marked;
    }
  }
  for (int i = 0; i < n && marked > 0; ++i) {
    if (!(work[i] & kSpike)) continue;
    int lo = i - kSpikeLevelHalfWindow;
    if (lo > n - 1 - 2 * kSpikeLevelHalfWindow) lo = n - 1 - 2 * kSpikeLevelHalfWindow;
    if (lo < 0) lo = 0;
    int m = 0;
    for (int j = lo; j <= lo + 2 * kSpikeLevelHalfWindow && j < n; ++j)
      if (good[j]) scratch[m++] = flux[j];
    const double upper = select_kth(scratch, m, static_cast<int>(kSpikeQuantile * (m - 1)));
    neighbourhood(n, i, flux, ivar, good, noise_var, &med, &var);
    if (!far_above(flux[i], upper, var, p)) {
      work[i] = kUse;  // not a spike after all
      --marked;
    }
  }
  return marked;
}

// (10 / SNR)^2 of an arm, the factor that scales the penalty. The SNR is that of a typical pixel,
// from mean(ivar f^2), which low-flux pixels barely move; without errors, from the scatter of
// first differences (the continuum varies little from one pixel to the next). Clamped to
// [1e-3, 1e3] so that a pathological arm cannot switch the penalty off or make it everything.
MGFAST_HD double penalty_noise_scale(int n, const float* flux, const float* ivar,
                                     const std::uint8_t* good, std::uint8_t use_bits = 0xFF) {
  double snr2 = 0.0;
  if (ivar) {
    double sum = 0.0;
    int cnt = 0;
    for (int i = 0; i < n; ++i)
      if (good[i] & use_bits) {
        sum += static_cast<double>(ivar[i]) * flux[i] * flux[i];
        ++cnt;
      }
    snr2 = cnt > 0 ? sum / cnt : 0.0;
  } else {
    double d2 = 0.0, f = 0.0;
    int cd = 0, cf = 0;
    for (int i = 0; i < n; ++i) {
      if (!(good[i] & use_bits)) continue;
      f += flux[i];
      ++cf;
      if (i + 1 < n && (good[i + 1] & use_bits)) {
        d2 += (flux[i + 1] - flux[i]) * (flux[i + 1] - flux[i]);
        ++cd;
      }
    }
    const double mean = cf > 0 ? f / cf : 0.0;
    const double var = cd > 0 ? 0.5 * d2 / cd : 0.0;
    snr2 = var > 0.0 ? mean * mean / var : 1e30;
  }
  double scale = snr2 > 0.0 ? 100.0 / snr2 : 1e3;
  if (scale < 1e-3) scale = 1e-3;
  if (scale > 1e3) scale = 1e3;
  return scale;
}

// After the last fit (work's kPrev bits: the pixels it used), marks kUnsupported the pixels
// whose continuum is not trustworthy and returns how many good pixels remain supported. A pixel
// is supported when, on each side of it within support_knots knot spacings (cut at the arm's
// ends; a side shorter than half that is not asked), the fit used at least min_support of the
// good pixels there: the spline bridges a gap
// (a broad absorption trough) but does not extrapolate across one (the ramp of a fit into a
// Lyman-limit break or a saturated stretch of forest). Its continuum must also be finite,
// positive and, where the pixel has an error, at least min_cont_snr sigma. Two sliding windows:
// O(n), no scratch beyond work.
MGFAST_HD int mark_unsupported(int n, const float* ivar, const std::uint8_t* good,
                               std::uint8_t* work, const float* cont, const Params& p) {
  int half = static_cast<int>(p.support_knots * p.knot_spacing);
  if (half < 1) half = 1;
  // used and good pixels in [i - half, i - 1] and [i + 1, i + half]
  int left = 0, right = 0, good_left = 0, good_right = 0;
  for (int j = 1; j < n && j <= half; ++j) {
    right += (work[j] & kPrev) != 0;
    good_right += good[j] != 0;
  }
  const double snr2 = p.min_cont_snr * p.min_cont_snr;
  int supported = 0;
  for (int i = 0; i < n; ++i) {
    if (i > 0) {
      left += (work[i - 1] & kPrev) != 0;
      good_left += good[i - 1] != 0;
      if (i - 1 - half >= 0) {
        left -= (work[i - 1 - half] & kPrev) != 0;
        good_left -= good[i - 1 - half] != 0;
      }
      right -= (work[i] & kPrev) != 0;
      good_right -= good[i] != 0;
      if (i + half < n) {
        right += (work[i + half] & kPrev) != 0;
        good_right += good[i + half] != 0;
      }
    }
    const double c = cont[i];
    // A side with fewer good pixels than half a window (the pixel is near the arm's end, where
    // the fit is anchored by the other side alone) is not asked for support.
    const bool left_ok = 2 * good_left < half || left >= p.min_support * good_left;
    const bool right_ok = 2 * good_right < half || right >= p.min_support * good_right;
    bool ok = is_finite(c) && c > 0.0 && left_ok && right_ok;
    // The continuum's own S/N needs the error array (without one, the arm's scatter about the
    // fit is too easily inflated by what the fit did not follow to judge single pixels).
    if (ok && snr2 > 0.0 && ivar && ivar[i] > 0.0f) ok = c * c * ivar[i] >= snr2;
    work[i] = static_cast<std::uint8_t>(ok ? (work[i] & ~kUnsupported) : (work[i] | kUnsupported));
    supported += (ok && good[i]) ? 1 : 0;
  }
  return supported;
}

// Fits the continuum of one arm of n pixels. flux and ivar (may be null: then the scatter about
// the fit sets the clipping scale) are the arm's pixels; good marks usable ones; work holds n
// bytes of scratch; cont receives the continuum; basis, when given, is this arm's (fill_basis
// with p.knot_spacing). Returns false (cont untouched beyond garbage) when too few pixels survive
// or the fit is not positive. Spikes (mark_spikes) are left out of the first fit; later fits clip
// them like any pixel far above the continuum. On success, work[i] & kSpike marks the spikes the
// final fit clips too (more than clip_high sigma above it): the pixels to mask. forest (or null)
// marks the arm's Lyman-alpha forest, fitted by mean-flux regulation (Forest, above).
MGFAST_HD bool fit_arm(int n, const float* flux, const float* ivar, const std::uint8_t* good,
                       std::uint8_t* work, float* cont, const Params& p,
                       const Basis* basis = nullptr, const Forest* forest = nullptr) {
  const int m = n_basis(n, p.knot_spacing);
  if (m > kMaxBasis || n < 8) return false;
  double inv_h = 0.0;
  const int nseg = spline_segments(n, p.knot_spacing, &inv_h);
  double band[kMaxBasis][4];
  double coef[kMaxBasis];
  int min_keep = static_cast<int>(p.min_fraction * n);
  if (min_keep < 8) min_keep = 8;
  const double low2 = p.clip_low * p.clip_low, high2 = p.clip_high * p.clip_high;

  for (int i = 0; i < n; ++i) work[i] = good[i] ? kUse : 0;
  // Spikes first (cont is scratch until the first fit): without errors, against the noise of
  // first differences. The penalty's SNR leaves them out too (a few spikes would multiply it).
  double global_var = 0.0;
  if (p.spike_sigma > 0.0) {
    const double noise_var = ivar ? 0.0 : difference_noise_var(n, flux, good, cont);
    mark_spikes(n, flux, ivar, good, work, noise_var, cont, p);
  }
  const double noise_scale = penalty_noise_scale(n, flux, ivar, work, kUse);
  // The forest: cont holds its pixels' flux over the mean transmission until the last fit, and
  // they stay in every fit (spikes aside): they are never clipped.
  const int fb = forest ? forest->begin : 0, fe = forest ? forest->end : 0;
  double tau = 0.0;
  const double tau_step = forest ? exp(kTauEffB * forest->dln) : 1.0;
  for (int i = fb; i < fe; ++i) {
    // 1 / mean_forest_flux = exp(tau_eff), tau_eff = A (lambda / 1215.67)^B: on the grid's
    // geometric wavelengths (1 + z)^B is itself geometric, so one exp per pixel
    if (i == fb) tau = kTauEffA * pow(forest->wavelength(i) / kLyaRest, kTauEffB);
    cont[i] = static_cast<float>(flux[i] * exp(tau));
    tau *= tau_step;
    const std::uint8_t spike = work[i] & kSpike;
    work[i] = static_cast<std::uint8_t>(((good[i] && !spike) ? kUse : 0) | spike);
  }
  bool fitted = false;
  for (int it = 0; it < p.max_iter; ++it) {
    for (int k = 0; k < m; ++k) {
      band[k][0] = band[k][1] = band[k][2] = band[k][3] = 0.0;
      coef[k] = 0.0;
    }
    // Normal equations. Pixels come in order, so one segment's sums are kept in registers (named
    // scalars: an array would live in memory) and added to the band when the segment changes.
    int used = 0;
    double b[4];
    int seg = -1;
    double s00 = 0, s01 = 0, s02 = 0, s03 = 0, s11 = 0, s12 = 0, s13 = 0, s22 = 0, s23 = 0, s33 = 0,
           r0 = 0, r1 = 0, r2 = 0, r3 = 0;
    for (int i = 0; i <= n; ++i) {
      const bool end = i == n;
      if (!end && !(work[i] & kUse)) continue;
      const int s = end ? -2 : basis_at(i, inv_h, nseg, basis, b);
      if (s != seg) {
        if (seg >= 0) {
          band[seg][0] += s00, band[seg][1] += s01, band[seg][2] += s02, band[seg][3] += s03;
          band[seg + 1][0] += s11, band[seg + 1][1] += s12, band[seg + 1][2] += s13;
          band[seg + 2][0] += s22, band[seg + 2][1] += s23, band[seg + 3][0] += s33;
          coef[seg] += r0, coef[seg + 1] += r1, coef[seg + 2] += r2, coef[seg + 3] += r3;
        }
        s00 = s01 = s02 = s03 = s11 = s12 = s13 = s22 = s23 = s33 = r0 = r1 = r2 = r3 = 0.0;
        seg = s;
      }
      if (end) break;
      ++used;
      const double f = (i >= fb && i < fe) ? cont[i] : flux[i];
      s00 += b[0] * b[0], s01 += b[0] * b[1], s02 += b[0] * b[2], s03 += b[0] * b[3];
      s11 += b[1] * b[1], s12 += b[1] * b[2], s13 += b[1] * b[3];
      s22 += b[2] * b[2], s23 += b[2] * b[3], s33 += b[3] * b[3];
      r0 += b[0] * f, r1 += b[1] * f, r2 += b[2] * f, r3 += b[3] * f;
    }
    if (used < min_keep) return false;
    // Second-difference penalty, scaled so that its strength depends neither on how many pixels
    // a coefficient sees nor on the flux units, and grows with the noise.
    // a coefficient sees.
    // Row k of the penalty is centred on coefficient k + 1, whose basis peaks at knot k.
    const double lam = p.penalty * noise_scale * used / m;
    const double d[3] = {1.0, -2.0, 1.0};
    for (int k = 0; k + 2 < m; ++k) {
      const double knot = inv_h > 0.0 ? k / inv_h : 0.0;
      const double lk = (knot >= fb && knot < fe) ? lam * p.forest_penalty : lam;
      for (int a = 0; a < 3; ++a)
        for (int c = a; c < 3; ++c) band[k + a][c - a] += lk * d[a] * d[c];
    }
    for (int k = 0; k < m; ++k) band[k][0] += 1e-9 * (1.0 + band[k][0]);
    if (!solve_band4(m, band, coef)) return false;

    double ss = 0.0, ss_forest = 0.0;
    for (int i = 0; i < n; ++i) {
      const int s = basis_at(i, inv_h, nseg, basis, b);
      const double c =
          b[0] * coef[s] + b[1] * coef[s + 1] + b[2] * coef[s + 2] + b[3] * coef[s + 3];
      if (i >= fb && i < fe) {  // (the forest's cont stays its input until the last fit)
        const double d = cont[i] - c;
        ss_forest += (work[i] & kUse) ? d * d : 0.0;
        continue;
      }
      cont[i] = static_cast<float>(c);
      const double d = flux[i] - c;
      ss += (work[i] & kUse) ? d * d : 0.0;
    }
    // The clipping scale without errors: the scatter outside the forest (in it where that is all)
    int used_forest = 0;
    for (int i = fb; i < fe; ++i) used_forest += (work[i] & kUse) != 0;
    global_var = used > used_forest ? ss / (used - used_forest) : ss_forest / used;

    // New rejection from all good pixels (not cumulative, so a pixel wrongly clipped early,
    // e.g. on an emission-line peak the fit had not yet reached, comes back).
    for (int i = 0; i < n; ++i) {
      const double d = flux[i] - cont[i];
      const bool low = (good[i] != 0) & (d < 0.0) & !(i >= fb && i < fe) &
                       beyond(d, low2, ivar, i, global_var, cont[i], p);
      work[i] = static_cast<std::uint8_t>((work[i] & (kUse | kPrev | kSpike)) | (low ? kLow : 0));
    }
    // Grow each rejected absorption pixel by p.grow pixels either side (bit 4 marks "near a
    // low pixel on the right", found in a backward sweep; the forward sweep adds the left).
    int next_low = n + p.grow + 1;
    for (int i = n - 1; i >= 0; --i) {
      next_low = (work[i] & kLow) ? i : next_low;
      work[i] |= (next_low - i <= p.grow) ? kNear : 0;
    }
    bool changed = false, as_before = it > 0;
    int prev_low = -p.grow - 1;
    for (int i = 0; i < n; ++i) {
      prev_low = (work[i] & kLow) ? i : prev_low;
      const double d = flux[i] - cont[i];
      // & rather than &&, and selects rather than ifs: the same values without a branch each
      const bool in_forest = i >= fb && i < fe;
      const bool use = in_forest
                           ? (good[i] != 0) & !(work[i] & kSpike)
                           : (good[i] != 0) & !(work[i] & kNear) & (i - prev_low > p.grow) &
                                 !((d > 0.0) & beyond(d, high2, ivar, i, global_var, cont[i], p));
      const bool cur = (work[i] & kUse) != 0;
      changed |= use != cur;
      as_before &= use == ((work[i] & kPrev) != 0);
      work[i] =
          static_cast<std::uint8_t>((use ? kUse : 0) | (cur ? kPrev : 0) | (work[i] & kSpike));
    }
    fitted = true;
    if (!changed) break;
    // The next mask is the previous one: the fit depends on nothing else, so the iteration now
    // alternates between two masks for good (a pixel or two flipping at a clipping threshold;
    // about one arm in eight). Stop at the one that max_iter would have ended on, so the result
    // is the same to the bit, without the iterations in between.
    if (as_before && (p.max_iter - 1 - it) % 2 == 0) break;
  }
  if (!fitted) return false;
  for (int i = fb; i < fe; ++i) {  // the forest's continuum, from the last fit
    double b[4];
    const int s = basis_at(i, inv_h, nseg, basis, b);
    cont[i] = static_cast<float>(b[0] * coef[s] + b[1] * coef[s + 1] + b[2] * coef[s + 2] +
                                 b[3] * coef[s + 3]);
  }
  if (mark_unsupported(n, ivar, good, work, cont, p) < min_keep) return false;
  // A spike stays one only where the final fit clips it as well: a pixel marked against a
  // neighbourhood of absorption, at the continuum itself, is not.
  for (int i = 0; i < n; ++i) {
    if (!(work[i] & kSpike)) continue;
    const double d = flux[i] - cont[i];
    if (!(d > 0.0 && beyond(d, high2, ivar, i, global_var, cont[i], p)))
      work[i] = static_cast<std::uint8_t>(work[i] & ~kSpike);
  }
  return true;
}

}  // namespace mgfast::continuum
