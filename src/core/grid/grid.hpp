// The 4MOST high-resolution spectral grid: the single definition everything else uses.
// Arms in vacuum Å, pixels uniform in ln λ with step 1/20000, each arm gridded from its own blue
// edge (λ_k = lo · exp(k / 20000), k = 0 … floor(20000 ln(hi/lo))), gaps between arms stripped.
#pragma once

#include <cmath>

#include "hd.hpp"

namespace mgfast::grid {

constexpr int kNumArms = 3;
constexpr double kResolvingPower = 20000.0;
constexpr double kDlnLambda = 1.0 / 20000.0;  // one resolution element per pixel
constexpr double kArmLo[kNumArms] = {3926.0, 5160.0, 6100.0};
constexpr double kArmHi[kNumArms] = {4355.0, 5730.0, 6790.0};
// floor(20000 ln(hi/lo)) + 1 for each arm; grid.cpp checks this against the rule at start-up and
// the tests check it again, so the rule stays the definition.
constexpr int kArmNPix[kNumArms] = {2075, 2096, 2144};
constexpr int kArmStart[kNumArms] = {0, 2075, 2075 + 2096};
constexpr int kNPix = 2075 + 2096 + 2144;  // 6315
constexpr const char* kArmNames[kNumArms] = {"blue", "green", "red"};

// The arrays above indexed at run time. Device code cannot read namespace-scope constexpr arrays
// (nvcc: "identifier ... is undefined in device code"), only scalars, so the elements are copied
// into scalar constants here; host and device then read the same values.
static_assert(kNumArms == 3, "the arm accessors below list each arm");
MGFAST_HD constexpr int arm_start(int a) {
  constexpr int s0 = kArmStart[0], s1 = kArmStart[1], s2 = kArmStart[2];
  return a == 0 ? s0 : (a == 1 ? s1 : s2);
}
MGFAST_HD constexpr int arm_npix(int a) {
  constexpr int n0 = kArmNPix[0], n1 = kArmNPix[1], n2 = kArmNPix[2];
  return a == 0 ? n0 : (a == 1 ? n1 : n2);
}
MGFAST_HD constexpr double arm_lo(int a) {
  constexpr double l0 = kArmLo[0], l1 = kArmLo[1], l2 = kArmLo[2];
  return a == 0 ? l0 : (a == 1 ? l1 : l2);
}

// Arm of a (gap-stripped) pixel index.
MGFAST_HD int arm_of_pixel(int p) { return p < arm_start(1) ? 0 : (p < arm_start(2) ? 1 : 2); }

// Pixel centre of a fractional pixel coordinate within its arm (Å).
MGFAST_HD double arm_wavelength(int arm, double k) { return arm_lo(arm) * exp(k * kDlnLambda); }

// Pixel centre (Å) of pixel p of the stripped grid.
MGFAST_HD double wavelength(int p) {
  const int a = arm_of_pixel(p);
  return arm_wavelength(a, static_cast<double>(p - arm_start(a)));
}

// Lower and upper edge (Å) of pixel p: half a pixel either side of the centre in ln λ.
MGFAST_HD double pixel_lo_edge(int p) {
  const int a = arm_of_pixel(p);
  return arm_wavelength(a, p - arm_start(a) - 0.5);
}
MGFAST_HD double pixel_hi_edge(int p) {
  const int a = arm_of_pixel(p);
  return arm_wavelength(a, p - arm_start(a) + 0.5);
}

// Arm whose pixels (edges included) cover wavelength lam, or -1 in a gap or outside.
MGFAST_HD int arm_of_wavelength(double lam) {
  for (int a = 0; a < kNumArms; ++a) {
    const double k = log(lam / arm_lo(a)) / kDlnLambda;
    if (k >= -0.5 && k <= arm_npix(a) - 0.5) return a;
  }
  return -1;
}

// Fractional pixel coordinate of lam on the stripped grid (pixel p's centre maps to p), or NaN
// when lam falls in a gap or outside the arms.
MGFAST_HD double pixel_of_wavelength(double lam) {
  const int a = arm_of_wavelength(lam);
  if (a < 0) return NAN;
  return arm_start(a) + log(lam / arm_lo(a)) / kDlnLambda;
}

// Inverse of pixel_of_wavelength for a fractional pixel coordinate inside an arm; NaN outside.
MGFAST_HD double wavelength_of_pixel(double x) {
  if (!(x >= -0.5 && x <= kNPix - 0.5)) return NAN;
  const int p = static_cast<int>(floor(x + 0.5));
  const int a = arm_of_pixel(p < kNPix ? p : kNPix - 1);
  return arm_wavelength(a, x - arm_start(a));
}

// Distance in pixels from pixel p to the nearer edge pixel of its arm (0 at the first and last).
MGFAST_HD int edge_distance(int p) {
  const int a = arm_of_pixel(p);
  const int k = p - arm_start(a);
  const int r = arm_npix(a) - 1 - k;
  return k < r ? k : r;
}

// The rule the pixel counts come from; used to check kArmNPix.
int arm_npix_from_rule(int arm);

}  // namespace mgfast::grid
