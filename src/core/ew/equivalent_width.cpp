#include "equivalent_width.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "atomic.hpp"
#include "grid.hpp"
#include "parallel.hpp"

namespace mgfast {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Pixel centres of the grid, increasing across the arms (the arms are in order).
const std::vector<double>& grid_wavelengths() {
  static const std::vector<double> lam = [] {
    std::vector<double> v(grid::kNPix);
    for (int p = 0; p < grid::kNPix; ++p) v[static_cast<std::size_t>(p)] = grid::wavelength(p);
    return v;
  }();
  return lam;
}

// numpy's median: the mean of the middle two for an even count. Reorders v.
double median(std::vector<double>& v) {
  const std::size_t n = v.size();
  const auto mid = v.begin() + static_cast<std::ptrdiff_t>(n / 2);
  std::nth_element(v.begin(), mid, v.end());
  if (n % 2 == 1) return *mid;
  return 0.5 * (*std::max_element(v.begin(), mid) + *mid);
}

}  // namespace

void validate(const EwOptions& o) {
  if (!(o.half_min > 0.0 && o.half_min <= o.half_max) || !(o.half_factor >= 0.0))
    throw std::invalid_argument("EW options: need 0 < half_min <= half_max and half_factor >= 0");
  if (!(o.side > 0.0) || !(o.min_coverage > 0.0 && o.min_coverage <= 1.0) || !(o.floor >= 0.0))
    throw std::invalid_argument("EW options: need side > 0, 0 < min_coverage <= 1, floor >= 0");
}

void measure_ew_cpu(const float* flux, const float* ivar, std::int64_t n_spec, int n_pix,
                    const std::int64_t* spectrum, const double* z, const double* guess,
                    std::int64_t n_abs, const EwOptions& o, double* ew, double* sigma,
                    int threads) {
  validate(o);
  if (n_pix != grid::kNPix)
    throw std::invalid_argument("EW: spectra must be on the grid (" + std::to_string(grid::kNPix) +
                                " pixels), got " + std::to_string(n_pix));
  const std::vector<double>& lam = grid_wavelengths();
  const double l1 = atomic::kMgII2796.lambda, l2 = atomic::kMgII2803.lambda;
  const double split = 0.5 * (l1 + l2);  // the doublet's midpoint, rest Å
  parallel_for(n_abs, threads, 256, [&](std::int64_t begin, std::int64_t end, int) {
    std::vector<double> side;
    for (std::int64_t i = begin; i < end; ++i) {
      for (int j = 0; j < 2; ++j) ew[2 * i + j] = sigma[2 * i + j] = kNaN;
      const std::int64_t s = spectrum[i];
      if (!std::isfinite(z[i]) || z[i] <= -1.0 || s < 0 || s >= n_spec) continue;
      const double zp1 = 1.0 + z[i];
      const double g = std::isfinite(guess[i]) ? o.half_factor * guess[i] : 0.0;
      const double h = std::clamp(g, o.half_min, o.half_max);
      // blue side | λ2796 window | λ2803 window | red side (observed Å)
      const std::array<double, 5> e = {(l1 - h - o.side) * zp1, (l1 - h) * zp1, split * zp1,
                                       (l2 + h) * zp1, (l2 + h + o.side) * zp1};
      const auto first = std::lower_bound(lam.begin(), lam.end(), e[0]) - lam.begin();
      const auto last = std::lower_bound(lam.begin(), lam.end(), e[4]) - lam.begin();
      const float* f = flux + s * n_pix;
      const float* iv = ivar + s * n_pix;
      // the local continuum level: the median of the side bands' usable pixels
      side.clear();
      double side_var = 0.0;
      std::array<int, 2> n_use{0, 0}, n_win{0, 0};
      for (auto p = first; p < last; ++p) {
        const double lp = lam[static_cast<std::size_t>(p)];
        const bool good = iv[p] > 0.0f && std::isfinite(f[p]);
        if (lp < e[1] || lp >= e[3]) {
          if (good) {
            side.push_back(f[p]);
            side_var += 1.0 / iv[p];
          }
        } else {
          const int j = lp < e[2] ? 0 : 1;
          ++n_win[j];
          n_use[j] += good ? 1 : 0;
        }
      }
      const auto n_side = static_cast<double>(side.size());
      if (side.size() < 5) continue;
      const double level = median(side);
      if (!(level > 0.0) || !std::isfinite(level)) continue;
      const double level_err = 1.2533 * std::sqrt(side_var / n_side) / std::sqrt(n_side);
      std::array<double, 2> absorbed{0.0, 0.0}, var_sum{0.0, 0.0}, width{0.0, 0.0};
      for (auto p = first; p < last; ++p) {
        const double lp = lam[static_cast<std::size_t>(p)];
        if (lp < e[1] || lp >= e[3] || !(iv[p] > 0.0f) || !std::isfinite(f[p])) continue;
        const int j = lp < e[2] ? 0 : 1;
        const double dl = lp * grid::kDlnLambda;
        absorbed[j] += (1.0 - f[p] / level) * dl;
        var_sum[j] += dl * dl / iv[p];
        width[j] += dl;
      }
      for (int j = 0; j < 2; ++j) {
        // expected pixels from the window's width in ln λ (arm gaps count as missing)
        const double expected = std::log(e[j + 2] / e[j + 1]) / grid::kDlnLambda;
        if (n_use[j] == 0 || n_use[j] < o.min_coverage * expected) continue;
        // masked pixels are made up for from the window's pixel count, a window partly off its
        // arm from the expected count (the two agree within a pixel otherwise)
        const double frac = (n_win[j] >= expected - 1.0 ? n_win[j] : expected) / n_use[j];
        const double w = absorbed[j] * frac / zp1;
        const double noise = var_sum[j] * frac * frac / (level * level);
        const double lev = level_err / level * width[j] * frac;
        ew[2 * i + j] = w;
        sigma[2 * i + j] = std::sqrt((noise + lev * lev) / (zp1 * zp1) + o.floor * o.floor * w * w);
      }
    }
  });
}

}  // namespace mgfast
