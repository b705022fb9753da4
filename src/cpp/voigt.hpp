// Optical depth of a Voigt absorption component, shared by CPU and CUDA.
#pragma once

#include <cmath>

#include "hd.hpp"

namespace mgfast::voigt {

constexpr double kCKms = 299792.458;

// Voigt-Hjerting function H(a, u) for the small damping parameters of metal lines and Lyα
// (a < 1e-2), after Tepper-García (2006, MNRAS 369, 2025): the Gaussian core plus the first
// damping correction; accurate to better than 1e-4 relative there. Near u = 0 the correction's
// series limit is used, where the closed form cancels catastrophically.
MGFAST_HD double hjerting(double a, double u) {
  const double u2 = u * u;
  const double h0 = exp(-u2);
  if (u2 < 1e-4) return h0 * (1.0 - 2.0 * a / 1.7724538509055159);
  const double q = 1.5 / u2;
  return h0 -
         a / 1.7724538509055159 / u2 * (h0 * h0 * (4.0 * u2 * u2 + 7.0 * u2 + 4.0 + q) - q - 1.0);
}

// Single-precision H(a, u) for rendering, where profiles are summed over many samples and 1e-6
// relative is ample; the same function serves the EW solve, so the two agree exactly.
MGFAST_HD float hjerting_f(float a, float u) {
  const float u2 = u * u;
  const float h0 = u2 < 80.0f ? expf(-u2) : 0.0f;  // skip expf's slow underflow path
  if (u2 < 1e-4f) return h0 * (1.0f - 2.0f * a / 1.7724539f);
  const float q = 1.5f / u2;
  return h0 - a / 1.7724539f / u2 * (h0 * h0 * (4.0f * u2 * u2 + 7.0f * u2 + 4.0f + q) - q - 1.0f);
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
