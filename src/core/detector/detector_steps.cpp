// The Detector's NumPy steps in C++ (detector_steps.hpp). Comments name the NumPy expression each
// line mirrors where the arithmetic's type matters.
#include "detector_steps.hpp"

#include <algorithm>
#include <cmath>
#include <sstream>
#include <stdexcept>
#include <string>

#include "atomic.hpp"
#include "flags.hpp"
#include "grid.hpp"

namespace mgfast::steps {
namespace {

constexpr double kCKms = 299792.458;       // atomic.C_KMS
constexpr double kAssociatedKms = 5000.0;  // flags.ASSOCIATED_KMS
constexpr double kLyaRest = 1215.67;       // flags.LYA_REST
constexpr int kEdgePixels = 10;            // flags.EDGE_PIXELS
constexpr float kLowSnrLimit = 3.0f;       // flags.LOW_SNR_LIMIT
constexpr int kUnitExponentLimit = 10;     // preprocess.UNIT_EXPONENT_LIMIT
constexpr int kLevelSamples = 256;         // preprocess._LEVEL_SAMPLES
constexpr std::uint32_t kLowSnr = 1u << 16, kNearEdge = 1u << 17, kNearMasked = 1u << 18,
                        kNotNormalised = 1u << 19, kInForest = 1u << 20, kAssociated = 1u << 21;

double doppler(double kms) { return std::sqrt((1 + kms / kCKms) / (1 - kms / kCKms)); }

bool arms_hit(double lo, double hi) {
  for (int a = 0; a < grid::kNumArms; ++a)
    if (lo <= grid::kArmHi[a] && hi >= grid::kArmLo[a]) return true;
  return false;
}

std::string g6(double x) {
  std::ostringstream s;
  s.precision(6);
  s << x;
  return s.str();
}

// preprocess.wave_problem
std::string wave_problem(double lo, double hi) {
  struct Unit {
    const char* name;
    double factor;  // 0: log10 Å
    const char* fix;
  };
  const Unit units[] = {{"nm", 10.0, "multiply by 10"},
                        {"µm", 1e4, "multiply by 1e4"},
                        {"m", 1e10, "multiply by 1e10"},
                        {"log10(λ/Å)", 0.0, "pass 10**wave"}};
  for (const Unit& u : units) {
    const bool ok = u.factor == 0.0 ? (0.0 < lo && hi < 10.0 &&
                                       arms_hit(std::pow(10.0, lo), std::pow(10.0, hi)))
                                    : arms_hit(lo * u.factor, hi * u.factor);
    if (ok)
      return g6(lo) + "-" + g6(hi) + " looks like " + u.name + "; mgfast wants vacuum Å (" + u.fix +
             ")";
  }
  return g6(lo) + "-" + g6(hi) +
         " Å misses every arm of the grid (blue 3926-4355, green 5160-5730, red 6100-6790 Å); "
         "mgfast needs vacuum Å covering at least one arm";
}

// The lower median (NaN-free values): preprocess._row_median.
double lower_median(std::vector<double>& v) {
  const std::size_t mid = (v.size() - 1) / 2;
  std::nth_element(v.begin(), v.begin() + mid, v.end());
  return v[mid];
}

// numpy.nanmedian of the non-NaN values (mean of the middle two for an even count); NaN if none.
double nanmedian(std::vector<double>& v) {
  if (v.empty()) return NAN;
  const std::size_t n = v.size(), mid = n / 2;
  std::nth_element(v.begin(), v.begin() + mid, v.end());
  const double hi = v[mid];
  if (n % 2) return hi;
  const double lo = *std::max_element(v.begin(), v.begin() + mid);
  return (lo + hi) / 2.0;
}

// preprocess._levels for one row over the given columns (all when cols is empty).
double level_of(const float* f, const float* e, bool is_ivar, const std::uint32_t* m,
                std::uint32_t bad_bits, int n_pix, const std::vector<std::int64_t>& cols) {
  std::vector<double> es, fa;
  const std::int64_t count = cols.empty() ? n_pix : std::int64_t(cols.size());
  for (std::int64_t c = 0; c < count; ++c) {
    const std::int64_t j = cols.empty() ? c : cols[c];
    const float a = std::fabs(f[j]);
    bool ok = std::isfinite(a);
    float s = 0.0f;
    if (e) {
      s = is_ivar ? 1.0f / std::sqrt(e[j]) : e[j];  // float32, as NumPy on float32 arrays
      ok = ok && std::isfinite(s) && s > 0.0f;
    }
    if (m) ok = ok && (m[j] & bad_bits) == 0;
    if (!ok) continue;
    if (e) es.push_back(s);
    fa.push_back(a);
  }
  double level = NAN;
  if (e && !es.empty()) level = lower_median(es);
  if (!(level > 0) && !fa.empty()) level = lower_median(fa);
  return level;
}

}  // namespace

void check_wave(const double* wave, std::int64_t n_rows, int n_pix) {
  for (std::int64_t r = 0; r < n_rows; ++r) {
    const double* w = wave + r * n_pix;
    for (int j = 0; j < n_pix; ++j)
      if (!std::isfinite(w[j])) throw std::invalid_argument("wave: contains NaN or inf");
    for (int j = 1; j < n_pix; ++j)
      if (!(w[j] > w[j - 1]))
        throw std::invalid_argument("wave: wavelengths must increase strictly along each spectrum");
  }
  for (std::int64_t r = 0; r < n_rows; ++r) {
    const double lo = wave[r * n_pix], hi = wave[r * n_pix + n_pix - 1];
    if (!arms_hit(lo, hi))
      throw std::invalid_argument(
          (n_rows == 1 ? std::string("wave") : "wave (spectrum " + std::to_string(r) + ")") + ": " +
          wave_problem(lo, hi));
  }
}

bool is_grid(const double* wave, int n_pix) {
  if (n_pix != grid::kNPix) return false;
  for (int p = 0; p < n_pix; ++p) {
    const double g = grid::wavelength(p);
    if (!(std::abs(wave[p] - g) <= 1e-9 * g)) return false;
  }
  return true;
}

std::vector<int> unit_exponents(const float* f, const float* e, bool is_ivar,
                                const std::uint32_t* m, std::uint32_t bad_bits, std::int64_t n,
                                int n_pix) {
  std::vector<std::int64_t> cols;
  if (n_pix > kLevelSamples) {  // numpy.linspace(0, n - 32, 8).astype(int64), blocks of 32
    const int num = kLevelSamples / 32;
    const double step = double(n_pix - 32) / double(num - 1);
    for (int i = 0; i < num; ++i) {
      const std::int64_t s =
          i == num - 1 ? std::int64_t(n_pix - 32) : static_cast<std::int64_t>(double(i) * step);
      for (int k = 0; k < 32; ++k) cols.push_back(s + k);
    }
  }
  std::vector<int> out(static_cast<std::size_t>(n), 0);
  for (std::int64_t i = 0; i < n; ++i) {
    const std::int64_t o = i * n_pix;
    double level =
        level_of(f + o, e ? e + o : nullptr, is_ivar, m ? m + o : nullptr, bad_bits, n_pix, cols);
    if (!(level > 0) && !cols.empty())  // nothing usable among the sampled pixels: all of them
      level =
          level_of(f + o, e ? e + o : nullptr, is_ivar, m ? m + o : nullptr, bad_bits, n_pix, {});
    int k = 0;
    if (level > 0 && std::isfinite(level)) k = static_cast<int>(std::nearbyint(std::log2(level)));
    out[i] = std::abs(k) > kUnitExponentLimit ? k : 0;
  }
  return out;
}

void times_power_of_two(float* x, std::int64_t n, int n_pix, const std::vector<int>& k, int sign) {
  bool small = true;  // every exponent within float32's: a product with the power of two
  for (std::int64_t i = 0; i < n; ++i) small = small && std::abs(sign * k[i]) <= 126;
  for (std::int64_t i = 0; i < n; ++i) {
    const int e = sign * k[i];
    float* r = x + i * n_pix;
    if (small) {
      const float p = std::ldexp(1.0f, e);
      for (int j = 0; j < n_pix; ++j) r[j] = r[j] * p;
    } else {
      for (int j = 0; j < n_pix; ++j) r[j] = std::ldexp(r[j], e);
    }
  }
}

void mask_beyond_z_em(const double* z_em, std::int64_t n, float* flux, float* ivar,
                      std::uint8_t* pixmask, std::int32_t* n_masked) {
  const double d = doppler(kAssociatedKms);
  for (std::int64_t i = 0; i < n; ++i) {
    const double cut = atomic::kMgII2803.lambda * (1 + z_em[i]) * d;  // NaN: nothing cut
    const std::int64_t o = i * grid::kNPix;
    for (int p = 0; p < grid::kNPix; ++p)
      if (grid::wavelength(p) > cut) {
        flux[o + p] = 1.0f;
        ivar[o + p] = 0.0f;
        pixmask[o + p] |= flags::kPixBeyondZem;
      }
    for (int a = 0; a < grid::kNumArms; ++a) {
      std::int32_t c = 0;
      for (int p = grid::kArmStart[a]; p < grid::kArmStart[a] + grid::kArmNPix[a]; ++p)
        c += pixmask[o + p] != 0;
      n_masked[i * grid::kNumArms + a] = c;
    }
  }
}

std::vector<float> scatter_ivar(const float* flux, const float* ivar, const std::uint8_t* pixmask,
                                std::int64_t n) {
  std::vector<float> out(ivar, ivar + n * grid::kNPix);
  std::vector<double> d, dev;
  for (std::int64_t i = 0; i < n; ++i) {
    const std::int64_t o = i * grid::kNPix;
    bool given = false;
    for (int p = 0; p < grid::kNPix && !given; ++p) given = ivar[o + p] > 0.0f;
    if (given) continue;
    for (int a = 0; a < grid::kNumArms; ++a) {
      const int s = grid::kArmStart[a], e = s + grid::kArmNPix[a];
      d.clear();
      for (int p = s; p + 1 < e; ++p)
        if (pixmask[o + p] == 0 && pixmask[o + p + 1] == 0)
          d.push_back(double(flux[o + p + 1]) - double(flux[o + p]));
      const std::size_t pairs = d.size();
      dev = d;
      const double med = nanmedian(dev);
      for (std::size_t j = 0; j < d.size(); ++j) d[j] = std::abs(d[j] - med);
      const double sigma = 1.4826 * nanmedian(d) / std::sqrt(2.0);
      const bool usable = std::isfinite(sigma) && sigma > 0 && pairs >= 20;
      const double iv = usable ? 1.0 / (sigma * sigma) : 0.0;
      for (int p = s; p < e; ++p) out[o + p] = pixmask[o + p] == 0 ? static_cast<float>(iv) : 0.0f;
    }
  }
  return out;
}

std::array<float, kMaskReasons> masked_by_reason(const std::uint8_t* pixmask) {
  static_assert(kMaskReasons == 6 && flags::kPixSpike == 1u << 5, "a reason per mask bit");
  std::array<std::int64_t, kMaskReasons> count{};
  for (int p = 0; p < grid::kNPix; ++p) {
    const unsigned m = pixmask[p];
    if (m == 0) continue;
    int bit = 0;
    while (!(m & (1u << bit))) ++bit;  // the lowest set bit: the first reason
    ++count[bit];
  }
  std::array<float, kMaskReasons> out{};
  for (int r = 0; r < kMaskReasons; ++r)
    out[r] = static_cast<float>(double(count[r]) / double(grid::kNPix));
  return out;
}

std::uint32_t quality(float snr, const std::uint8_t* pixmask, double lam) {
  std::uint32_t f = snr < kLowSnrLimit ? kLowSnr : 0u;
  if (!std::isfinite(lam)) return f;
  const double ratio = atomic::kMgII2803.lambda / atomic::kMgII2796.lambda;
  bool near_edge = false, near_mask = false;
  for (const double line : {lam, lam * ratio}) {
    const double p = grid::pixel_of_wavelength(line);
    const bool ok = std::isfinite(p);
    const std::int64_t pix = std::clamp<std::int64_t>(
        static_cast<std::int64_t>(std::nearbyint(ok ? p : 0.0)), 0, grid::kNPix - 1);
    near_edge = near_edge || !ok || grid::edge_distance(static_cast<int>(pix)) < kEdgePixels;
    if (!ok) continue;
    for (int k = -kEdgePixels; k <= kEdgePixels; ++k) {
      const std::int64_t q = std::clamp<std::int64_t>(pix + k, 0, grid::kNPix - 1);
      near_mask = near_mask || pixmask[q] != 0;
    }
  }
  return f | (near_edge ? kNearEdge : 0u) | (near_mask ? kNearMasked : 0u);
}

std::uint32_t z_em_flags(double lam, double z_em) {
  const double z_abs = lam / atomic::kMgII2796.lambda - 1.0;
  const bool forest = lam < kLyaRest * (1 + z_em);
  const bool assoc =
      std::abs(std::log((1 + z_abs) / (1 + z_em))) <= std::log(doppler(kAssociatedKms));
  return (forest ? kInForest : 0u) | (assoc ? kAssociated : 0u);
}

float calibrate(float score, const double* x, const double* y, std::size_t n) {
  if (n == 0) return score;
  // numpy.interp (arr_interp): left and right values outside, the knot's value on a knot and at
  // the last, otherwise slope * (v - x[j]) + y[j] with the slope (y[j+1] - y[j]) / (x[j+1] - x[j])
  const double v = score;
  if (std::isnan(v)) return score;  // numpy gives NaN back
  double r;
  if (v > x[n - 1]) {
    r = y[n - 1];
  } else if (v < x[0]) {
    r = y[0];
  } else {
    // the last j with x[j] <= v
    std::size_t lo = 0, hi = n - 1;
    while (lo < hi) {
      const std::size_t mid = (lo + hi + 1) / 2;
      if (x[mid] <= v) {
        lo = mid;
      } else {
        hi = mid - 1;
      }
    }
    const std::size_t j = lo;
    if (j == n - 1 || x[j] == v) {
      r = y[j];
    } else {
      const double slope = (y[j + 1] - y[j]) / (x[j + 1] - x[j]);
      r = slope * (v - x[j]) + y[j];
      if (std::isnan(r)) {
        r = slope * (v - x[j + 1]) + y[j + 1];
        if (std::isnan(r) && y[j] == y[j + 1]) r = y[j];
      }
    }
  }
  return static_cast<float>(r);
}

std::uint32_t check_normalised(const float* flux, const std::uint8_t* pixmask) {
  std::int64_t usable = 0, low = 0, high = 0;
  for (int p = 0; p < grid::kNPix; p += 7) {
    if (pixmask[p] != 0) continue;
    ++usable;
    low += flux[p] < 0.2f;  // NORMALISED_MEDIAN_RANGE, compared in float32 as NumPy does
    high += flux[p] > 5.0f;
  }
  const double half = usable / 2.0;
  return (low > half || high > half) ? kNotNormalised : 0u;
}

}  // namespace mgfast::steps
