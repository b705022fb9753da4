// Optical depth of a Voigt absorption component, shared by CPU and CUDA.
#pragma once

#include <cmath>

#include "fastmath.hpp"
#include "hd.hpp"

namespace mgfast::voigt {

constexpr double kCKms = 299792.458;

// Voigt-Hjerting function H(a, u) for the small damping parameters of metal lines and Lyα
// (a < 1e-2), after Tepper-García (2006, MNRAS 369, 2025): the Gaussian core plus the first
// damping correction, accurate to better than 1e-4 relative there:
//   H = h0 - a / (√π u²) · [h0² (4u⁴ + 7u² + 4 + q) - q - 1],  h0 = e^{-u²}, q = 3 / (2u²).
// Near the line centre the bracket is O(u²) but its terms are O(1/u²): written as is it cancels
// catastrophically (in float, an error of ~1e-3 in H at u ~ 0.01 for MgII, and CPU and GPU
// rounding gave different answers). It is evaluated as h0² (4u⁴ + 7u² + 4) - 1 + q (h0² - 1),
// with h0² - 1 = expm1(-2u²) exact to rounding, so no term is larger than 4. At u² < 1e-4 the
// series limit h0 (1 - 2a/√π) is used (the next term is 4a u²/√π: below 3e-7 there).
MGFAST_HD double hjerting(double a, double u) {
  const double u2 = u * u;
  const double h0 = exp(-u2);
  if (u2 < 1e-4) return h0 * (1.0 - 2.0 * a / 1.7724538509055159);
  const double m = u2 < 0.5 ? expm1(-2.0 * u2) : h0 * h0 - 1.0;  // h0² - 1, as hjerting_f
  const double bracket = h0 * h0 * (4.0 * u2 * u2 + 7.0 * u2 + 4.0) - 1.0 + 1.5 / u2 * m;
  return h0 - a / 1.7724538509055159 / u2 * bracket;
}

// Single-precision H(a, u) for rendering, where profiles are summed over many samples and 1e-6
// relative is ample; the same function serves the EW solve, so the two agree exactly. Branch-free
// (fastmath.hpp), so that the CPU evaluates many samples at once.
MGFAST_HD float hjerting_f(float a, float u) {
  const float u2 = u * u;
  // Zero beyond u² = 40 (e^-40 = 4e-18), so that h0² stays a normal float.
  // (Both sides of each choice are computed, then one is selected: straight-line code.)
  const float e = fastmath::exp(u2 < 40.0f ? -u2 : -40.0f);
  const float h0 = u2 < 40.0f ? e : 0.0f;
  const float us = u2 < 1e-4f ? 1e-4f : u2, inv = 1.0f / us;
  // h0² - 1: expm1 where h0² is near 1 (the cancellation), plain beyond, where it costs
  // nothing in accuracy (error 1.5 ε / u⁴ · a/√π < 1e-9 at u² >= 0.5).
  const float em1 = fastmath::expm1_small(us < 0.5f ? -2.0f * us : -1.0f);
  const float m = us < 0.5f ? em1 : h0 * h0 - 1.0f;
  const float bracket = h0 * h0 * (4.0f * us * us + 7.0f * us + 4.0f) - 1.0f + 1.5f * inv * m;
  const float general = h0 - a * 0.56418958f * inv * bracket;
  return u2 < 1e-4f ? h0 * (1.0f - 2.0f * a * 0.56418958f) : general;
}

// Central optical-depth factor: τ(u) = tau_scale(N, f, λ0, b) · H(a, u), with N in cm^-2, λ0 in
// Å and b in km/s (τ0 = √π e² / (m_e c) · f λ0 N / b = 1.4974e-15 N f λ0 / b).
MGFAST_HD double tau_scale(double n_col, double f, double lambda0, double b) {
  return 1.4974e-15 * n_col * f * lambda0 / b;
}

// Damping parameter a = Γ λ0 / (4π b).
MGFAST_HD double damping(double gamma, double lambda0, double b) {
  return gamma * lambda0 * 1e-13 / (4.0 * 3.141592653589793 * b);  // λ0 Å -> cm, b km/s -> cm/s
}

}  // namespace mgfast::voigt
