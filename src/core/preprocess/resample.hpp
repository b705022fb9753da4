// Per-pixel resampling kernels shared by the CPU and CUDA paths: input validity, Gaussian
// line-spread-function degradation on an arbitrary grid, and flux-conserving rebinning.
#pragma once

#include <cmath>
#include <cstdint>

#include "hd.hpp"

namespace mgfast::resample {

// FWHM of a Gaussian = kFwhmPerSigma * sigma.
constexpr double kFwhmPerSigma = 2.3548200450309493;
// The LSF kernel is truncated at this many sigma (the weight lost is 6e-8 of the total).
constexpr double kLsfTruncation = 5.4;

// Whether an input pixel is usable, and its variance. err is a 1-sigma error, or an inverse
// variance when err_is_ivar; have_err false means no error is known (variance 0).
MGFAST_HD bool input_pixel(float flux, float err, bool have_err, bool err_is_ivar,
                           std::uint32_t mask, std::uint32_t bad_bits, double* var) {
  *var = 0.0;
  if (!is_finite(flux) || (mask & bad_bits) != 0u) return false;
  if (!have_err) return true;
  if (!is_finite(err) || !(err > 0.0f)) return false;
  const double e = err;
  *var = err_is_ivar ? 1.0 / e : e * e;
  return is_finite(*var) && *var > 0.0;
}

// Edge k (0..n) of input pixel grid whose centres are wave[0..n-1]: midpoints between centres,
// extrapolated by half a pixel at either end.
MGFAST_HD double input_edge(const double* wave, int n, int k) {
  if (k == 0) return wave[0] - 0.5 * (wave[1] - wave[0]);
  if (k == n) return wave[n - 1] + 0.5 * (wave[n - 1] - wave[n - 2]);
  return 0.5 * (wave[k - 1] + wave[k]);
}

// Gaussian width (sigma, in ln λ) that degrades resolving power r_in to r_out, or 0 when the
// input is not finer than the output.
MGFAST_HD double lsf_sigma_ln(double r_in, double r_out) {
  if (!(r_in > r_out)) return 0.0;
  const double fwhm2 = 1.0 / (r_out * r_out) - 1.0 / (r_in * r_in);
  return sqrt(fwhm2) / kFwhmPerSigma;
}

// Convolves the input with a Gaussian of width sigma (ln λ) at input pixel i. The input is taken
// as constant over each pixel, so each neighbour's weight is the Gaussian's integral over that
// pixel (exact normalisation and equivalent-width conservation for any sampling). Bad pixels are
// left out and the weights renormalised; the result is bad when under half the weight was good.
MGFAST_HD bool lsf_smooth_pixel(int i, int n, const double* lnedge, const float* flux,
                                const double* var, const std::uint8_t* good, double sigma,
                                float* out_flux, double* out_var) {
  const double x = 0.5 * (lnedge[i] + lnedge[i + 1]);
  const double reach = kLsfTruncation * sigma;
  const double inv = 1.0 / (sqrt(2.0) * sigma);
  int lo = i;
  while (lo > 0 && lnedge[lo] > x - reach) --lo;
  int hi = i;
  while (hi < n - 1 && lnedge[hi + 1] < x + reach) ++hi;
  double wsum = 0.0, wgood = 0.0, fsum = 0.0, vsum = 0.0;
  for (int j = lo; j <= hi; ++j) {
    const double w = 0.5 * (erf((lnedge[j + 1] - x) * inv) - erf((lnedge[j] - x) * inv));
    wsum += w;
    if (good[j]) {
      wgood += w;
      fsum += w * flux[j];
      vsum += w * w * var[j];
    }
  }
  if (!(wgood > 0.5 * wsum) || !(wgood > 0.0)) {
    *out_flux = 0.0f;
    *out_var = 0.0;
    return false;
  }
  *out_flux = static_cast<float>(fsum / wgood);
  *out_var = vsum / (wgood * wgood);
  return true;
}

// First input pixel j whose upper edge lies above lam (binary search over edges[0..n]).
MGFAST_HD int first_pixel_above(const double* edge, int n, double lam) {
  int lo = 0, hi = n;  // answer in [0, n]
  while (lo < hi) {
    const int mid = (lo + hi) / 2;
    if (edge[mid + 1] > lam) {
      hi = mid;
    } else {
      lo = mid + 1;
    }
  }
  return lo;
}

// The same as first_pixel_above for a caller that walks increasing lam (the CPU, output pixels in
// order): a linear advance from its previous answer `from` (0 at first). The edges increase, so the
// answer for a larger lam is never below the previous one, and the scan stops at the same pixel
// the binary search finds. On a spectrum this replaces ~13 dependent loads per output pixel (the
// binary search took a third of preprocessing) by one or two.
MGFAST_HD int first_pixel_above_from(const double* edge, int n, double lam, int from) {
  int j = from;
  while (j < n && !(edge[j + 1] > lam)) ++j;
  return j;
}

// first_pixel_above, or first_pixel_above_from when the caller keeps a cursor (then updated).
MGFAST_HD int first_pixel(const double* edge, int n, double lam, int* cursor) {
  if (!cursor) return first_pixel_above(edge, n, lam);
  *cursor = first_pixel_above_from(edge, n, lam, *cursor);
  return *cursor;
}

struct RebinResult {
  float flux;      // mean flux density over the good part of the output pixel
  double var;      // its variance
  double covered;  // fraction of the output pixel covered by input pixels
  double good;     // fraction covered by good input pixels
};

// Flux-conserving rebinning of the piecewise-constant input onto the output pixel [lo, hi]:
// the output is the input's mean over the pixel (so sum(flux_out * width) = integral of the
// input), with the variance of that mean propagated from the input variances. cursor (or null):
// see first_pixel.
MGFAST_HD RebinResult rebin_pixel(double lo, double hi, int n, const double* edge,
                                  const float* flux, const double* var, const std::uint8_t* good,
                                  int* cursor = nullptr) {
  RebinResult r{0.0f, 0.0, 0.0, 0.0};
  const double width = hi - lo;
  double cov = 0.0, og = 0.0, fs = 0.0, vs = 0.0;
  for (int j = first_pixel(edge, n, lo, cursor); j < n && edge[j] < hi; ++j) {
    const double a = edge[j] > lo ? edge[j] : lo;
    const double b = edge[j + 1] < hi ? edge[j + 1] : hi;
    const double o = b - a;
    if (!(o > 0.0)) continue;
    cov += o;
    if (good[j]) {
      og += o;
      fs += o * flux[j];
      vs += o * o * var[j];
    }
  }
  r.covered = cov / width;
  r.good = og / width;
  if (og > 0.0) {
    r.flux = static_cast<float>(fs / og);
    r.var = vs / (og * og);
  }
  return r;
}

// Integral of the standard normal CDF: F(z) = z Φ(z) + φ(z), so that ∫ Φ(z) dz = F.
MGFAST_HD double integrated_cdf(double z) {
  return z * 0.5 * (1.0 + erf(z * 0.7071067811865476)) + 0.3989422804014327 * exp(-0.5 * z * z);
}

// Below this width (in units of the output pixel) the LSF is negligible and plain rebinning is
// used: the closed form below then loses precision to cancellation.
constexpr double kMinLsfSigmaPixels = 1e-3;

// The F((l - lnedge[e]) / sigma) terms of lsf_rebin_pixel at its right edge l, for input edges
// e in [lo, hi) (f has n + 1 entries): the next output pixel, whose left edge is l, reads them
// instead of evaluating them again (the CPU walks a spectrum's pixels in order; each term is then
// evaluated once instead of twice). Invalidate (valid = false) for another spectrum or sigma.
struct LsfEdgeCache {
  double* f = nullptr;
  double l = 0.0;
  int lo = 0, hi = 0;
  bool valid = false;
};

// Degradation and rebinning in one linear step, so that the variance is propagated exactly:
// output pixel [l0, l1] (ln λ) receives the mean over the pixel of the input convolved with a
// Gaussian of width sigma (ln λ). The input is piecewise constant on pixels with ln-λ edges
// lnedge[0..n], so input pixel k's weight is the box-averaged Gaussian overlap, in closed form:
// W_k = sigma/(l1-l0) · [F((l1-a)/σ) - F((l0-a)/σ) - F((l1-b)/σ) + F((l0-b)/σ)],
// a, b the pixel's edges. The weights of a fully covered pixel sum to 1, so flux is conserved;
// bad input pixels are left out and the weights renormalised. cache: see LsfEdgeCache; cursor:
// see first_pixel.
MGFAST_HD RebinResult lsf_rebin_pixel(double l0, double l1, double sigma, int n,
                                      const double* lnedge, const float* flux, const double* var,
                                      const std::uint8_t* good, LsfEdgeCache* cache = nullptr,
                                      int* cursor = nullptr) {
  RebinResult r{0.0f, 0.0, 0.0, 0.0};
  const double reach = kLsfTruncation * sigma;
  const double inv = 1.0 / sigma;
  const double scale = sigma / (l1 - l0);
  double wall = 0.0, wg = 0.0, fs = 0.0, vs = 0.0;
  // Each edge's term is shared by the two pixels either side of it: evaluate it once. With a
  // cache, the left edge's terms come from the previous output pixel, and the right edge's go
  // to the next (each read before it is overwritten).
  const bool cached = cache && cache->valid && cache->l == l0;
  const int from = cached ? cache->lo : 0, to = cached ? cache->hi : 0;
  auto edge_term = [&](int e) {
    const double right = integrated_cdf((l1 - lnedge[e]) * inv);
    const double left = e >= from && e < to ? cache->f[e] : integrated_cdf((l0 - lnedge[e]) * inv);
    if (cache) cache->f[e] = right;
    return right - left;
  };
  int k = first_pixel(lnedge, n, l0 - reach, cursor);
  const int first = k;
  double ga = 0.0;
  if (k < n) ga = edge_term(k);
  for (; k < n && lnedge[k] < l1 + reach; ++k) {
    const double gb = edge_term(k + 1);
    const double w = scale * (ga - gb);
    ga = gb;
    wall += w;
    if (good[k]) {
      wg += w;
      fs += w * flux[k];
      vs += w * w * var[k];
    }
  }
  if (cache) {
    *cache = {cache->f, l1, first, first < n ? k + 1 : first, true};
  }
  r.covered = wall;
  r.good = wg;
  if (wg > 0.0) {
    r.flux = static_cast<float>(fs / wg);
    r.var = vs / (wg * wg);
  }
  return r;
}

}  // namespace mgfast::resample
