// The simulator's branch-free float functions against the C library in double, over the ranges
// the simulator uses them on, and the Voigt-Hjerting function built on them against its double
// version.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "fastmath.hpp"
#include "voigt.hpp"

namespace fm = mgfast::fastmath;

TEST(FastMath, ExpRelativeError) {
  double worst = 0.0;
  for (int i = 0; i <= 2000000; ++i) {
    const float x = -87.0f + 175.0f * static_cast<float>(i) / 2000000.0f;
    const double want = std::exp(static_cast<double>(x));
    worst = std::max(worst, std::fabs(fm::exp(x) - want) / want);
  }
  EXPECT_LT(worst, 2e-7);
  EXPECT_GT(fm::exp(-1000.0f), 0.0f);  // clamped: a normal float, never 0 or a denormal
  EXPECT_LT(fm::exp(-1000.0f), 1e-37f);
}

TEST(FastMath, Expm1RelativeErrorOnMinusOneToZero) {
  double worst = 0.0;
  for (int i = 1; i <= 1000000; ++i) {
    const float x = -static_cast<float>(i) / 1000000.0f;
    const double want = std::expm1(static_cast<double>(x));
    worst = std::max(worst, std::fabs(fm::expm1_small(x) - want) / std::fabs(want));
  }
  EXPECT_LT(worst, 1e-7 * 2);
  EXPECT_FLOAT_EQ(fm::expm1_small(-1e-6f), static_cast<float>(std::expm1(-1e-6)));
}

TEST(FastMath, LogRelativeError) {
  double worst = 0.0;
  for (int i = 1; i <= 2000000; ++i) {
    // Uniforms from 2^-33 to 1, log-spaced, as Box-Muller draws them.
    const float x = static_cast<float>(std::pow(2.0, -33.0 * (1.0 - i / 2000000.0)));
    const double want = std::log(static_cast<double>(x));
    const double err = std::fabs(fm::log(x) - want);
    worst = std::max(worst, want == 0.0 ? err : err / std::fabs(want));
  }
  EXPECT_LT(worst, 2e-7);
  EXPECT_EQ(fm::log(1.0f), 0.0f);
}

TEST(FastMath, SinCosAbsoluteError) {
  double worst = 0.0;
  for (int i = 0; i < 2000000; ++i) {
    const float t = static_cast<float>(i) / 2000000.0f;
    float c, s;
    fm::sincos_2pi(t, &c, &s);
    const double a = 2.0 * M_PI * static_cast<double>(t);
    worst = std::max({worst, std::fabs(c - std::cos(a)), std::fabs(s - std::sin(a))});
  }
  EXPECT_LT(worst, 2e-7);
}

TEST(FastMath, HjertingFloatAgreesWithDouble) {
  // MgII's damping parameter at b = 3-60 km/s, Lyα's at 12 km/s; u over the line and far wings.
  for (const double a : {4e-5, 1e-4, 8e-4, 3e-3}) {
    double worst = 0.0;
    for (int i = 0; i <= 200000; ++i) {
      const double u = -20.0 + 40.0 * i / 200000.0;
      const double want = mgfast::voigt::hjerting(a, u);
      const double got = mgfast::voigt::hjerting_f(static_cast<float>(a), static_cast<float>(u));
      worst = std::max(worst, std::fabs(got - want));
    }
    // Near u² = 1e-4, where the series limit takes over, float rounding in the bracket leaves
    // about 2.6e-3 a (H is about 1 there); libm's expf gave the same.
    EXPECT_LT(worst, 3e-3 * a + 1e-7) << "a = " << a;
  }
}
