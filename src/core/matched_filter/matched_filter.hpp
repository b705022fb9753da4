// The classical MgII doublet matched filter on the grid, written once for the CPU
// (matched_filter.cpp) and CUDA (src/cuda/matched_filter.cu); docs/matched_filter.md has the
// method.
#pragma once

#include <cstdint>

#include "fastmath.hpp"
#include "grid.hpp"
#include "hd.hpp"

namespace mgfast::matched_filter {

constexpr int kMaxWidths = 8;
constexpr double kWindow = 4.0;  // each line's template reaches this many σ either side
// A template much narrower than the LSF (σ = 0.42 pixel at one pixel per resolution element)
// fits nothing real.
constexpr double kMinWidth = 0.3;
// Wider, the two lines' template windows (±kWindow σ) would overlap across the 51-pixel spacing,
// and the two amplitudes would no longer be independent fits.
constexpr double kMaxWidth = 6.0;
constexpr int kMaxTaps = 2 * 24 + 2;  // 2 ceil(kWindow kMaxWidth) + 2 (the fractional shift)
constexpr int kMaxTopK = 16;
// Each line's summed template weight Σ T² w must be at least this fraction of the other's (below).
constexpr float kMinWeightRatio = 0.25f;
// Noise estimated from the data needs this many usable pixels in an arm, and is never taken
// below kMinNoiseSigma (a noiseless arm would otherwise get infinite weight).
constexpr int kMinNoisePixels = 50;
constexpr double kMinNoiseSigma = 1e-3;

// Everything the stages need, plain data so that it can be copied to the device as it is. Built on
// the host by make_filter (matched_filter.cpp), which also checks it.
struct Filter {
  int n_width = 0;
  int top_k = 4;
  double spacing = 0.0;    // λ2803 − λ2796 in pixels, constant on a log-λ grid (≈ 51.27)
  int reach = 0;           // ceil(spacing): a position needs this many arm pixels after it
  double rest2796 = 0.0;   // Å
  double inv_ratio = 0.0;  // EW2803/EW2796 of the template
  double ratio_lo = 0.8, ratio_hi = 2.2;  // the ratios a doublet may have ...
  double ratio_sigma = 2.0;               // ... within this many standard errors
  double separation = 0.0;        // candidates nearer than this (pixels, same arm) are one system
  double width[kMaxWidths] = {};  // Gaussian σ of each template, pixels
  // Per width and line (0: λ2796, 1: λ2803): taps of the pixel-integrated unit-area Gaussian;
  // tap k sits at pixel offset lo + k from the candidate position (λ2803's includes the spacing).
  int lo[kMaxWidths][2] = {};
  int n_tap[kMaxWidths][2] = {};
  float tap[kMaxWidths][2][kMaxTaps] = {};
};

// Inputs, row-major host (or device) pointers.
struct Batch {
  int n_spec = 0;
  const float* flux = nullptr;  // (n_spec, kNPix) continuum-normalised; masked pixels 1
  const float* ivar = nullptr;  // optional (n_spec, kNPix); null or an all-zero row: estimated
};

// Outputs, (n_spec, top_k) row-major, candidates by decreasing significance. An empty slot has
// significance 0, NaN wavelength, redshift and EW, and width -1.
struct Output {
  float* significance = nullptr;
  double* lambda2796 = nullptr;  // observed, vacuum Å
  double* redshift = nullptr;
  float* ew2796 = nullptr;        // rest frame, Å
  std::int32_t* width = nullptr;  // index into Filter::width
};

// Positions (λ2796 pixels, arm-local) whose λ2803 also lies in arm a: 0 … n_positions − 1.
MGFAST_HD int n_positions(const Filter& f, int a) {
  const int n = grid::arm_npix(a) - f.reach;
  return n > 0 ? n : 0;
}

// ---- per pixel: the weights --------------------------------------------------------------------

// Whether a spectrum came with errors: any positive inverse variance.
MGFAST_HD bool has_errors(const float* ivar_row) {
  if (ivar_row == nullptr) return false;
  for (int p = 0; p < grid::kNPix; ++p)
    if (ivar_row[p] > 0.0f) return true;
  return false;
}

// Without errors, a pixel is usable when finite and not exactly 1 (the masked pixels' value; a
// measured flux lands exactly on 1.0f a few times in 10^7 pixels at SNR 10, which costs nothing).
MGFAST_HD bool usable_without_errors(float v) { return is_finite(v) && v != 1.0f; }

// Order-preserving map of a float onto an unsigned integer, so that an order statistic can be
// found by bisection on integers: exact, without sorting or scratch memory (which GPU threads
// lack).
MGFAST_HD std::uint32_t order_key(float v) {
  const std::uint32_t b = static_cast<std::uint32_t>(fastmath::to_bits(v));
  return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

MGFAST_HD float key_value(std::uint32_t key) {
  const std::uint32_t b = (key & 0x80000000u) ? (key & 0x7FFFFFFFu) : ~key;
  return fastmath::from_bits(static_cast<std::int32_t>(b));
}

// The k-th smallest (from 0) of the values value(i, v) marks valid, i in [0, n).
template <class Value>
MGFAST_HD float kth_smallest(int n, int k, Value value) {
  std::uint32_t lo = 0u, hi = 0xFFFFFFFFu;
  while (lo < hi) {
    const std::uint32_t mid = lo + (hi - lo) / 2u;
    int count = 0;
    for (int i = 0; i < n; ++i) {
      float v;
      if (value(i, v) && order_key(v) <= mid) ++count;
    }
    if (count >= k + 1) {
      hi = mid;
    } else {
      lo = mid + 1u;
    }
  }
  return key_value(lo);
}

// Inverse variance of arm a of a spectrum given without errors: 1 / (1.4826 MAD)² of the usable
// pixels' flux (the MAD ignores absorption lines and the odd outlier); 0 when the arm has too few
// usable pixels to say.
MGFAST_HD float estimate_arm_ivar(const float* flux_row, int a) {
  const float* f = flux_row + grid::arm_start(a);
  const int n = grid::arm_npix(a);
  int count = 0;
  for (int i = 0; i < n; ++i) count += usable_without_errors(f[i]) ? 1 : 0;
  if (count < kMinNoisePixels) return 0.0f;
  const float med = kth_smallest(n, count / 2, [&](int i, float& v) {
    v = f[i];
    return usable_without_errors(f[i]);
  });
  const float mad = kth_smallest(n, count / 2, [&](int i, float& v) {
    v = f[i] > med ? f[i] - med : med - f[i];
    return usable_without_errors(f[i]);
  });
  double sigma = 1.482602218505602 * mad;  // MAD to σ of a Gaussian
  if (!(sigma > kMinNoiseSigma)) sigma = kMinNoiseSigma;
  return static_cast<float>(1.0 / (sigma * sigma));
}

// Weight w and weighted absorption u = (1 − flux) w of pixel p. arm_ivar < 0: use the given ivar;
// otherwise it is the arm's estimated inverse variance. Non-finite input carries no weight.
MGFAST_HD void prepare_pixel(const float* flux_row, const float* ivar_row, const float* arm_ivar,
                             int p, float* u, float* w) {
  const float f = flux_row[p];
  const float ai = arm_ivar[grid::arm_of_pixel(p)];
  float wt = 0.0f;
  if (ai < 0.0f) {
    const float iv = ivar_row[p];
    if (is_finite(f) && is_finite(iv) && iv > 0.0f) wt = iv;
  } else if (usable_without_errors(f)) {
    wt = ai;
  }
  w[p] = wt;
  u[p] = wt > 0.0f ? (1.0f - f) * wt : 0.0f;
}

// ---- per position: the fit ---------------------------------------------------------------------

// acc[x − x0] = Σ_k tap[k] v[x + lo + k] (tap² when square) for x in [x0, x1), v being 0 outside
// [0, n). Taps are added in the same order whatever the range, so the CPU (whole arms at once,
// vectorised over x) and the GPU (one x per thread) get the same sums to the last bit.
MGFAST_HD void correlate(const float* __restrict__ v, int n, const float* __restrict__ tap, int lo,
                         int n_tap, bool square, int x0, int x1, float* __restrict__ acc) {
  for (int x = x0; x < x1; ++x) acc[x - x0] = 0.0f;
  for (int k = 0; k < n_tap; ++k) {
    const int off = lo + k;
    const float t = square ? tap[k] * tap[k] : tap[k];
    const int b = x0 > -off ? x0 : -off;
    const int e = x1 < n - off ? x1 : n - off;
    for (int x = b; x < e; ++x) acc[x - x0] += t * v[x + off];
  }
}

// The four sums of one (position, width): Σ T a w and Σ T² w for each line's template T.
struct Sums {
  float b1 = 0.0f, c1 = 0.0f, b2 = 0.0f, c2 = 0.0f;
};

// Sums at arm-local position i, u and w pointing at the arm's first pixel.
MGFAST_HD Sums sums_at(const float* u, const float* w, int n, const Filter& f, int wi, int i) {
  Sums s;
  correlate(u, n, f.tap[wi][0], f.lo[wi][0], f.n_tap[wi][0], false, i, i + 1, &s.b1);
  correlate(w, n, f.tap[wi][0], f.lo[wi][0], f.n_tap[wi][0], true, i, i + 1, &s.c1);
  correlate(u, n, f.tap[wi][1], f.lo[wi][1], f.n_tap[wi][1], false, i, i + 1, &s.b2);
  correlate(w, n, f.tap[wi][1], f.lo[wi][1], f.n_tap[wi][1], true, i, i + 1, &s.c2);
  return s;
}

// The same at pixel p of the stripped grid (a valid position).
MGFAST_HD Sums sums_at_pixel(const float* u_row, const float* w_row, const Filter& f, int wi,
                             int p) {
  const int a = grid::arm_of_pixel(p), p0 = grid::arm_start(a);
  return sums_at(u_row + p0, w_row + p0, grid::arm_npix(a), f, wi, p - p0);
}

// The lines' windows never overlap (kMaxWidth), so the two amplitudes are independent fits,
// A_i = b_i / c_i ± 1 / sqrt(c_i), and the doublet template T1 + T2 / ratio has the significance
// (amplitude over its error) (b1 + b2 / ratio) / sqrt(c1 + c2 / ratio²).
//
// Both lines must be measured, each to within kMinWeightRatio of the other's weight (c): where one
// lies mostly on masked pixels (or under a sky line), the fit cannot tell a doublet from the other
// line alone, whose significance the doublet's would merely repeat.
MGFAST_HD bool measured(const Sums& m) {
  return m.c1 > 0.0f && m.c2 > 0.0f && m.c2 >= kMinWeightRatio * m.c1 &&
         m.c1 >= kMinWeightRatio * m.c2;
}

// Significance of the doublet template; 0 when a line is not measured.
MGFAST_HD float significance(const Sums& m, const Filter& f) {
  if (!measured(m)) return 0.0f;
  return static_cast<float>((m.b1 + m.b2 * f.inv_ratio) /
                            sqrt(m.c1 + m.c2 * f.inv_ratio * f.inv_ratio));
}

// Whether (A1, A2) is within ratio_sigma standard errors of a physical doublet, (ρ v, v) with
// v ≥ 0 and ρ in [ratio_lo, ratio_hi]: a lone line or a noise spike has one amplitude near zero
// and fails. In error units, q = (A1 / e1, A2 / e2) = (b1 / √c1, b2 / √c2), the doublets form the
// cone spanned by d(ρ) = (ρ √c1, √c2); q·d = ρ b1 + b2 and |d|² = ρ² c1 + c2, so no square root
// is needed.
MGFAST_HD bool physical(const Sums& m, const Filter& f) {
  if (!measured(m)) return false;
  const double b1 = m.b1, c1 = m.c1, b2 = m.b2, c2 = m.c2;
  // Inside the cone: ratio_lo A2 ≤ A1 ≤ ratio_hi A2.
  if (b1 * c2 <= f.ratio_hi * b2 * c1 && b1 * c2 >= f.ratio_lo * b2 * c1) return true;
  const double qq = b1 * b1 / c1 + b2 * b2 / c2;
  double d2 = qq;  // squared distance to the nearer edge ray (the origin, when both point away)
  const double rho[2] = {f.ratio_lo, f.ratio_hi};
  for (int r = 0; r < 2; ++r) {
    const double qd = rho[r] * b1 + b2;
    if (qd > 0.0) {
      const double d = qq - qd * qd / (rho[r] * rho[r] * c1 + c2);
      if (d < d2) d2 = d;
    }
  }
  return d2 <= f.ratio_sigma * f.ratio_sigma;
}

// Per pixel p of the stripped grid: the doublet significance of every width, into
// sig_row[wi * kNPix + p]; 0 where p is no valid position.
MGFAST_HD void position_significance(const float* u_row, const float* w_row, const Filter& f, int p,
                                     float* sig_row) {
  const int a = grid::arm_of_pixel(p);
  const bool valid = p - grid::arm_start(a) < n_positions(f, a);
  for (int wi = 0; wi < f.n_width; ++wi)
    sig_row[wi * grid::kNPix + p] =
        valid ? significance(sums_at_pixel(u_row, w_row, f, wi, p), f) : 0.0f;
}

// The most significant width at pixel p (the first of equal ones) and its significance.
MGFAST_HD float best_width(const float* sig_row, const Filter& f, int p, int* wi) {
  *wi = 0;
  float s = sig_row[p];
  for (int k = 1; k < f.n_width; ++k) {
    if (sig_row[k * grid::kNPix + p] > s) {
      s = sig_row[k * grid::kNPix + p];
      *wi = k;
    }
  }
  return s;
}

// Per pixel p: a candidate when the significance, maximised over widths, peaks at p among the
// neighbouring positions and that width's two amplitudes are a physical doublet's. best_w is the
// width, −1 when p is no candidate. Only peaks are tested, and only with their own best width:
// beside and inside a strong lone line the templates ride its wings, or sit in its saturated
// trough, where an amplitude passes through values the ratio test accepts with a λ2803 amplitude
// of zero; those positions and widths are never the peak. sums(wi, p) gives the Sums (the CPU
// keeps them, the GPU recomputes them: the ratio test runs at few positions).
template <class SumsOf>
MGFAST_HD void position_best(const float* sig_row, const Filter& f, int p, SumsOf sums,
                             float* best_s, std::int8_t* best_w) {
  *best_s = 0.0f;
  *best_w = -1;
  const int a = grid::arm_of_pixel(p);
  const int i = p - grid::arm_start(a), m = n_positions(f, a);
  if (i >= m) return;
  int wi, other;
  const float s = best_width(sig_row, f, p, &wi);
  if (!(s > 0.0f)) return;
  if (i > 0 && !(s > best_width(sig_row, f, p - 1, &other))) return;
  if (i + 1 < m && s < best_width(sig_row, f, p + 1, &other)) return;
  if (!physical(sums(wi, p), f)) return;
  *best_s = s;
  *best_w = static_cast<std::int8_t>(wi);
}

// ---- per spectrum: candidates ------------------------------------------------------------------

// Sub-pixel offset of a peak from its neighbours' significances: a parabola through ln S (exact
// for a Gaussian peak, which a Gaussian line correlated with a Gaussian template is), or through
// S when a neighbour is not positive; within half a pixel.
MGFAST_HD double peak_offset(double sm, double s0, double sp) {
  double ym = sm, y0 = s0, yp = sp;
  if (sm > 0.0 && s0 > 0.0 && sp > 0.0) {
    ym = log(sm);
    y0 = log(s0);
    yp = log(sp);
  }
  const double den = ym - 2.0 * y0 + yp;
  if (!(den < 0.0)) return 0.0;
  const double d = 0.5 * (ym - yp) / den;
  return d > 0.5 ? 0.5 : (d < -0.5 ? -0.5 : d);
}

// λ2796's amplitude fitted on its own (its EW in pixels); 0 without weight.
MGFAST_HD double amplitude1(const Sums& m) {
  return m.c1 > 0.0f ? static_cast<double>(m.b1) / m.c1 : 0.0;
}

// An amplitude at offset d from its value a0 at a peak and am, ap either side: on the parabola
// through ln a (a Gaussian, as in peak_offset), or a0 when one is not positive.
MGFAST_HD double amplitude_at(double am, double a0, double ap, double d) {
  if (!(am > 0.0 && a0 > 0.0 && ap > 0.0)) return a0;
  const double ym = log(am), y0 = log(a0), yp = log(ap);
  return exp(y0 + 0.5 * d * (yp - ym) + 0.5 * d * d * (yp - 2.0 * y0 + ym));
}

// The top_k most significant candidates of one spectrum, each farther than f.separation from
// those before it in the same arm, refined, into row s of out.
template <class SumsOf>
MGFAST_HD void finish_spectrum(const float* sig_row, const float* best_s, const std::int8_t* best_w,
                               const Filter& f, SumsOf sums, int s, const Output& out) {
  int chosen[kMaxTopK];
  for (int c = 0; c < f.top_k; ++c) {
    int pick = -1;
    float top = 0.0f;
    for (int p = 0; p < grid::kNPix; ++p) {
      if (best_w[p] < 0 || !(best_s[p] > top)) continue;
      const int a = grid::arm_of_pixel(p);
      bool taken = false;
      for (int j = 0; j < c && !taken; ++j) {
        const int q = chosen[j];
        taken = q >= 0 && grid::arm_of_pixel(q) == a && (p > q ? p - q : q - p) <= f.separation;
      }
      if (!taken) {
        pick = p;
        top = best_s[p];
      }
    }
    chosen[c] = pick;
    const long long k = static_cast<long long>(s) * f.top_k + c;
    if (pick < 0) {
      out.significance[k] = 0.0f;
      out.lambda2796[k] = NAN;
      out.redshift[k] = NAN;
      out.ew2796[k] = NAN;
      out.width[k] = -1;
      continue;
    }
    const int a = grid::arm_of_pixel(pick), wi = best_w[pick];
    const int i = pick - grid::arm_start(a);
    const bool inner = i > 0 && i + 1 < n_positions(f, a);
    const float* sg = sig_row + wi * grid::kNPix;
    const double offset = inner ? peak_offset(sg[pick - 1], sg[pick], sg[pick + 1]) : 0.0;
    const double lam = grid::wavelength_of_pixel(pick + offset);
    out.significance[k] = best_s[pick];
    out.lambda2796[k] = lam;
    out.redshift[k] = lam / f.rest2796 - 1.0;
    // The λ2796 amplitude is its EW in pixels, taken at the refined peak (half a pixel off, it
    // would be 4 % low); a pixel is λ Δlnλ wide, λ_rest Δlnλ in the rest frame.
    double a1 = amplitude1(sums(wi, pick));
    if (inner)
      a1 = amplitude_at(amplitude1(sums(wi, pick - 1)), a1, amplitude1(sums(wi, pick + 1)), offset);
    out.ew2796[k] = static_cast<float>(a1 * f.rest2796 * grid::kDlnLambda);
    out.width[k] = wi;
  }
}

// ---- host side (matched_filter.cpp) -------------------------------------------------------------

// EW2796/EW2803 of an optically thin doublet: the ratio of f λ², from atomic.hpp.
double thin_ratio();

// The filter for these template widths (σ, pixels) and options; throws std::invalid_argument
// naming the argument when one is out of range.
Filter make_filter(const double* widths, int n_width, int top_k, double ratio_lo, double ratio_hi,
                   double ratio_sigma);

// Checks what the stages assume of a batch; throws std::invalid_argument naming the problem.
void validate(const Batch& b);

// The filter on the CPU with `threads` threads (0: all); outputs allocated (n_spec x top_k).
void run_cpu(const Batch& b, const Filter& f, const Output& out, int threads);

}  // namespace mgfast::matched_filter
