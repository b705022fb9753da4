// The EW measurement of the core against analytic doublets (tests/test_ew.py covers the rest
// through Python: noise, masks, arm ends, the combination).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <vector>

#include "atomic.hpp"
#include "equivalent_width.hpp"
#include "grid.hpp"

namespace mgfast {
namespace {

// A normalised spectrum with Gaussian lines of rest EWs w1, w2 (Å) at redshift z, scaled by
// `continuum` (a normalisation that is off).
std::vector<float> doublet(double z, double w1, double w2, double s_obs, double continuum) {
  std::vector<float> f(grid::kNPix);
  const double c1 = atomic::kMgII2796.lambda * (1 + z), c2 = atomic::kMgII2803.lambda * (1 + z);
  const double norm = (1 + z) / (s_obs * std::sqrt(2 * M_PI));
  for (int p = 0; p < grid::kNPix; ++p) {
    const double l = grid::wavelength(p);
    const double a = w1 * norm * std::exp(-0.5 * std::pow((l - c1) / s_obs, 2)) +
                     w2 * norm * std::exp(-0.5 * std::pow((l - c2) / s_obs, 2));
    f[static_cast<std::size_t>(p)] = static_cast<float>(continuum * (1.0 - a));
  }
  return f;
}

TEST(EquivalentWidth, NoiselessDoubletsAreMeasuredAndTheLevelTakesOutAnOffContinuum) {
  const double z = 5400.0 / atomic::kMgII2796.lambda - 1.0;
  std::vector<float> flux = doublet(z, 0.8, 0.5, 0.6, 1.0);
  const std::vector<float> off = doublet(z, 0.8, 0.5, 0.6, 1.05);
  flux.insert(flux.end(), off.begin(), off.end());
  const std::vector<float> ivar(flux.size(), 1e6f);
  const std::vector<std::int64_t> spectrum = {0, 1, 2, -1};
  const std::vector<double> zs = {z, z, z, z}, guess = {0.8, 0.8, 0.8, 0.8};
  std::vector<double> ew(8), sigma(8);
  measure_ew_cpu(flux.data(), ivar.data(), 2, grid::kNPix, spectrum.data(), zs.data(), guess.data(),
                 4, EwOptions{}, ew.data(), sigma.data(), 2);
  for (int i = 0; i < 2; ++i) {
    EXPECT_NEAR(ew[2 * i], 0.8, 0.8 * 1e-3) << i;
    EXPECT_NEAR(ew[2 * i + 1], 0.5, 0.5 * 1e-3) << i;
    EXPECT_GT(sigma[2 * i], 0.0);
  }
  for (int j = 4; j < 8; ++j) EXPECT_TRUE(std::isnan(ew[j]));  // no such spectrum
}

TEST(EquivalentWidth, OffGridSpectraAndBadOptionsAreRefused) {
  const std::vector<float> f(100, 1.0f);
  const std::int64_t s = 0;
  const double z = 1.0, g = 1.0;
  double ew[2], sigma[2];
  EXPECT_THROW(measure_ew_cpu(f.data(), f.data(), 1, 100, &s, &z, &g, 1, EwOptions{}, ew, sigma, 1),
               std::invalid_argument);
  EwOptions bad;
  bad.half_min = 5.0;
  EXPECT_THROW(validate(bad), std::invalid_argument);
  bad = EwOptions{};
  bad.min_coverage = 0.0;
  EXPECT_THROW(validate(bad), std::invalid_argument);
}

}  // namespace
}  // namespace mgfast
