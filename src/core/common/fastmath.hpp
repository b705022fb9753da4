// Branch-free single-precision exp, expm1, log and sin/cos for the simulator's inner loops,
// shared by the CPU and CUDA paths. libm's expf/logf/sincosf are calls the compiler cannot
// vectorise; these are straight-line polynomials (Cephes-style range reduction) that it can, and
// they give the same numbers on both devices. Accuracy over the ranges used (tests/cpp/
// test_fastmath.cpp): exp and log within 2e-7 relative, expm1 within 1e-7 relative on [-1, 0],
// sin/cos within 2e-7 absolute.
#pragma once

#include <cstdint>
#include <cstring>

#include "hd.hpp"

namespace mgfast::fastmath {

MGFAST_HD float from_bits(std::int32_t i) {
#if defined(__CUDA_ARCH__)
  return __int_as_float(i);
#else
  float f;
  std::memcpy(&f, &i, sizeof f);
  return f;
#endif
}

MGFAST_HD std::int32_t to_bits(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_int(f);
#else
  std::int32_t i;
  std::memcpy(&i, &f, sizeof i);
  return i;
#endif
}

// Nearest integer of x (|x| < 2^31), ties away from zero, by truncation (vectorises everywhere).
MGFAST_HD std::int32_t round_int(float x) {
  return static_cast<std::int32_t>(x + (x >= 0.0f ? 0.5f : -0.5f));
}

// e^x for x in [-87, 88] (clamped there: the result stays a normal float).
MGFAST_HD float exp(float x) {
  x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
  const std::int32_t n = round_int(x * 1.44269504088896341f);
  const float fn = static_cast<float>(n);
  // x - n ln 2 in two parts (Cody-Waite), |r| <= ln2 / 2.
  const float r = (x - fn * 0.693359375f) + fn * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  return p * from_bits((n + 127) << 23);
}

// e^x - 1 for x in [-1, 0], to full relative precision near 0 (Taylor series to x^10: the
// truncation is below 3e-8 relative on the interval).
MGFAST_HD float expm1_small(float x) {
  float r = 1.0f + x * 0.1f;
  r = 1.0f + x * (1.0f / 9.0f) * r;
  r = 1.0f + x * 0.125f * r;
  r = 1.0f + x * (1.0f / 7.0f) * r;
  r = 1.0f + x * (1.0f / 6.0f) * r;
  r = 1.0f + x * 0.2f * r;
  r = 1.0f + x * 0.25f * r;
  r = 1.0f + x * (1.0f / 3.0f) * r;
  r = 1.0f + x * 0.5f * r;
  return x * r;
}

// Natural log of a positive normal float.
MGFAST_HD float log(float x) {
  const std::int32_t i = to_bits(x);
  std::int32_t e = ((i >> 23) & 255) - 127;
  float m = from_bits((i & 0x007FFFFF) | 0x3F800000);  // [1, 2)
  const bool big = m > 1.41421356f;                    // to [1/√2, √2): |s| <= 0.1716
  m = big ? 0.5f * m : m;
  e = big ? e + 1 : e;
  const float s = (m - 1.0f) / (m + 1.0f), s2 = s * s;
  float p = 1.0f / 9.0f;
  p = p * s2 + 1.0f / 7.0f;
  p = p * s2 + 0.2f;
  p = p * s2 + 1.0f / 3.0f;
  p = p * s2 + 1.0f;
  return static_cast<float>(e) * 0.693147180559945f + 2.0f * s * p;
}

// cos(2πt) and sin(2πt) for t in [0, 1): reduced to an octant, |θ| <= π/4, then Taylor series
// (truncation below 2e-9) and the quadrant's rotation.
MGFAST_HD void sincos_2pi(float t, float* c_out, float* s_out) {
  t -= static_cast<float>(round_int(t));  // [-1/2, 1/2]
  const std::int32_t q = round_int(4.0f * t);
  const float th = 6.28318530717959f * (t - 0.25f * static_cast<float>(q));
  const float t2 = th * th;
  float s = 1.0f - t2 * (1.0f / 72.0f);  // sin θ = θ (1 - θ²/6 (1 - θ²/20 (1 - ...)))
  s = 1.0f - t2 * (1.0f / 42.0f) * s;
  s = 1.0f - t2 * (1.0f / 20.0f) * s;
  s = th * (1.0f - t2 * (1.0f / 6.0f) * s);
  float c = 1.0f - t2 * (1.0f / 90.0f);  // cos θ = 1 - θ²/2 (1 - θ²/12 (1 - ...))
  c = 1.0f - t2 * (1.0f / 56.0f) * c;
  c = 1.0f - t2 * (1.0f / 30.0f) * c;
  c = 1.0f - t2 * (1.0f / 12.0f) * c;
  c = 1.0f - t2 * 0.5f * c;
  const std::int32_t qm = q & 3;  // θ + qm π/2
  *c_out = qm == 0 ? c : (qm == 1 ? -s : (qm == 2 ? -c : s));
  *s_out = qm == 0 ? s : (qm == 1 ? c : (qm == 2 ? -s : -c));
}

}  // namespace mgfast::fastmath
