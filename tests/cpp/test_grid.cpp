// The grid's tabulated arm sizes against the rule, and its conversions, in C++.
#include <gtest/gtest.h>

#include <cmath>

#include "grid.hpp"

namespace g = mgfast::grid;

TEST(Grid, ArmSizesFollowTheRule) {
  int start = 0;
  for (int a = 0; a < g::kNumArms; ++a) {
    EXPECT_EQ(g::arm_npix_from_rule(a), g::kArmNPix[a]);
    EXPECT_EQ(g::arm_start(a), start);
    start += g::kArmNPix[a];
  }
  EXPECT_EQ(start, g::kNPix);
}

TEST(Grid, RoundTripEveryPixel) {
  for (int p = 0; p < g::kNPix; ++p) {
    const double lam = g::wavelength(p);
    EXPECT_NEAR(g::pixel_of_wavelength(lam), p, 1e-8);
    EXPECT_NEAR(g::wavelength_of_pixel(g::pixel_of_wavelength(lam)), lam, 1e-9);
    EXPECT_LT(g::pixel_lo_edge(p), lam);
    EXPECT_GT(g::pixel_hi_edge(p), lam);
  }
}

TEST(Grid, GapsAreNotPixels) {
  EXPECT_TRUE(std::isnan(g::pixel_of_wavelength(5000.0)));
  EXPECT_EQ(g::arm_of_wavelength(5900.0), -1);
  EXPECT_EQ(g::arm_of_wavelength(5400.0), 1);
}
