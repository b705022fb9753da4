// CPU driver of the doublet matched filter (matched_filter.hpp): spectra are split across threads;
// each thread correlates whole arms at a time, so that the compiler vectorises over positions.
#include "matched_filter.hpp"

#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "atomic.hpp"
#include "parallel.hpp"

namespace mgfast::matched_filter {

namespace {

// Pixel-integrated Gaussian of unit area centred at c (pixels): the template's taps from
// floor(c − kWindow σ) to ceil(c + kWindow σ), renormalised to sum to 1 after truncation.
void gaussian_taps(double c, double sigma, int* lo, int* n_tap, float* tap) {
  const int first = static_cast<int>(std::floor(c - kWindow * sigma));
  const int last = static_cast<int>(std::ceil(c + kWindow * sigma));
  *lo = first;
  *n_tap = last - first + 1;
  if (*n_tap > kMaxTaps) throw std::logic_error("matched filter: template longer than kMaxTaps");
  const double inv = 1.0 / (sigma * std::sqrt(2.0));
  std::vector<double> v(*n_tap);
  double sum = 0.0;
  for (int k = 0; k < *n_tap; ++k) {
    const double x = first + k - c;
    v[k] = 0.5 * (std::erf((x + 0.5) * inv) - std::erf((x - 0.5) * inv));
    sum += v[k];
  }
  for (int k = 0; k < *n_tap; ++k) tap[k] = static_cast<float>(v[k] / sum);
}

}  // namespace

double thin_ratio() {
  const auto& l1 = atomic::kMgII2796;
  const auto& l2 = atomic::kMgII2803;
  return (l1.f * l1.lambda * l1.lambda) / (l2.f * l2.lambda * l2.lambda);
}

Filter make_filter(const double* widths, int n_width, int top_k, double ratio_lo, double ratio_hi,
                   double ratio_sigma) {
  if (n_width < 1 || n_width > kMaxWidths)
    throw std::invalid_argument("widths: expected 1 to " + std::to_string(kMaxWidths) +
                                " template widths, got " + std::to_string(n_width));
  if (top_k < 1 || top_k > kMaxTopK)
    throw std::invalid_argument("top_k: expected 1 to " + std::to_string(kMaxTopK) + ", got " +
                                std::to_string(top_k));
  if (!(ratio_lo > 0.0 && ratio_hi > ratio_lo && std::isfinite(ratio_hi)))
    throw std::invalid_argument("ratio_range: expected 0 < low < high, finite");
  if (!(ratio_sigma >= 0.0 && std::isfinite(ratio_sigma)))
    throw std::invalid_argument("ratio_sigma: expected a finite number >= 0");
  Filter f;
  f.n_width = n_width;
  f.top_k = top_k;
  f.rest2796 = atomic::kMgII2796.lambda;
  f.spacing = std::log(atomic::kMgII2803.lambda / atomic::kMgII2796.lambda) / grid::kDlnLambda;
  f.reach = static_cast<int>(std::ceil(f.spacing));
  // The geometric mean of the saturated (1) and optically thin (f λ² ratio, ≈ 2) limits: the
  // template then loses under 1.5 % of the significance of a doublet at either limit.
  f.inv_ratio = 1.0 / std::sqrt(thin_ratio());
  f.ratio_lo = ratio_lo;
  f.ratio_hi = ratio_hi;
  f.ratio_sigma = ratio_sigma;
  // Farther than two spacings apart, neither candidate is an alias (one line of the other
  // doublet taken as λ2796 or λ2803) of the other.
  f.separation = 2.0 * f.spacing;
  for (int wi = 0; wi < n_width; ++wi) {
    const double s = widths[wi];
    if (!(s >= kMinWidth && s <= kMaxWidth))
      throw std::invalid_argument("widths: each template σ must lie in [" +
                                  std::to_string(kMinWidth) + ", " + std::to_string(kMaxWidth) +
                                  "] pixels, got " + std::to_string(s));
    f.width[wi] = s;
    gaussian_taps(0.0, s, &f.lo[wi][0], &f.n_tap[wi][0], f.tap[wi][0]);
    gaussian_taps(f.spacing, s, &f.lo[wi][1], &f.n_tap[wi][1], f.tap[wi][1]);
    if (f.lo[wi][0] + f.n_tap[wi][0] > f.lo[wi][1])
      throw std::logic_error("matched filter: the two lines' windows overlap");
  }
  return f;
}

void validate(const Batch& b) {
  if (b.n_spec < 0) throw std::invalid_argument("flux: negative number of spectra");
  if (b.flux == nullptr && b.n_spec > 0) throw std::invalid_argument("flux: missing");
}

namespace {

// One worker's rows, allocated once per call rather than per chunk of spectra.
struct Scratch {
  std::vector<float> u, w, best_s, sig;
  std::vector<std::int8_t> best_w;
  // The sums of every width and position, kept for the ratio test and the EW (the GPU recomputes
  // the few it needs).
  std::vector<float> b1, c1, b2, c2;
};

}  // namespace

void run_cpu(const Batch& b, const Filter& f, const Output& out, int threads) {
  validate(b);
  constexpr std::size_t npix = grid::kNPix;
  const std::size_t rows = static_cast<std::size_t>(f.n_width) * npix;
  const int nt = resolve_threads(threads);
  std::vector<Scratch> scratch(nt);
  parallel_for(b.n_spec, nt, 8, [&](std::int64_t begin, std::int64_t end, int worker) {
    Scratch& sc = scratch[worker];
    for (auto* v : {&sc.u, &sc.w, &sc.best_s}) v->resize(npix);
    for (auto* v : {&sc.sig, &sc.b1, &sc.c1, &sc.b2, &sc.c2}) v->resize(rows);
    sc.best_w.resize(npix);
    auto sums = [&](int wi, int p) {
      const std::size_t k = static_cast<std::size_t>(wi) * npix + p;
      Sums m;
      m.b1 = sc.b1[k];
      m.c1 = sc.c1[k];
      m.b2 = sc.b2[k];
      m.c2 = sc.c2[k];
      return m;
    };
    for (std::int64_t s64 = begin; s64 < end; ++s64) {
      const int s = static_cast<int>(s64);
      const float* flux = b.flux + s * npix;
      const float* ivar = b.ivar ? b.ivar + s * npix : nullptr;
      float arm_ivar[grid::kNumArms];
      const bool errors = has_errors(ivar);
      for (int a = 0; a < grid::kNumArms; ++a)
        arm_ivar[a] = errors ? -1.0f : estimate_arm_ivar(flux, a);
      for (int p = 0; p < grid::kNPix; ++p)
        prepare_pixel(flux, ivar, arm_ivar, p, sc.u.data(), sc.w.data());

      // position_significance, a whole arm at a time: the same sums in the same order.
      for (int wi = 0; wi < f.n_width; ++wi) {
        const float* t1 = f.tap[wi][0];
        const float* t2 = f.tap[wi][1];
        for (int a = 0; a < grid::kNumArms; ++a) {
          const int p0 = grid::arm_start(a), n = grid::arm_npix(a), m = n_positions(f, a);
          const float* ua = sc.u.data() + p0;
          const float* wa = sc.w.data() + p0;
          const std::size_t o = static_cast<std::size_t>(wi) * npix + p0;
          correlate(ua, n, t1, f.lo[wi][0], f.n_tap[wi][0], false, 0, m, &sc.b1[o]);
          correlate(wa, n, t1, f.lo[wi][0], f.n_tap[wi][0], true, 0, m, &sc.c1[o]);
          correlate(ua, n, t2, f.lo[wi][1], f.n_tap[wi][1], false, 0, m, &sc.b2[o]);
          correlate(wa, n, t2, f.lo[wi][1], f.n_tap[wi][1], true, 0, m, &sc.c2[o]);
          for (int i = 0; i < n; ++i)
            sc.sig[o + i] = i < m ? significance(sums(wi, p0 + i), f) : 0.0f;
        }
      }
      for (int p = 0; p < grid::kNPix; ++p)
        position_best(sc.sig.data(), f, p, sums, &sc.best_s[p], &sc.best_w[p]);
      finish_spectrum(sc.sig.data(), sc.best_s.data(), sc.best_w.data(), f, sums, s, out);
    }
  });
}

}  // namespace mgfast::matched_filter
