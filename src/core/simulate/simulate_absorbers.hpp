// The simulator's MgII absorbers: their kinematics (paper-like and sky), the solve of column
// densities for a requested EW2796, and where λ2796 falls: see simulate.hpp.
#pragma once

#include "simulate_types.hpp"

namespace mgfast::sim {

// ---- MgII absorbers: kinematics and the EW solve ---------------------------------------------

// Kinematics of an MgII absorber of rest EW2796 `ew` (Å): 1 + Poisson(1.5 EW) components (at
// most kMaxComponents), velocities Gaussian with σ = 15 + 35 EW km/s, Doppler b log-normal about
// 6 + 4 EW km/s (σ_ln 0.35, 3-60 km/s), relative column densities log-normal (σ 0.4 dex). Strong
// MgII systems are many saturated components spread over hundreds of km/s (Churchill et al.
// 2003; Mshar et al. 2007): this is what makes EW2796/EW2803 approach 1.
MGFAST_HD void draw_kinematics(rng::Stream& r, double ew, System* s) {
  int n = 1 + r.poisson(1.5 * ew);
  if (n > kMaxPaperComponents) n = kMaxPaperComponents;
  s->n_comp = n;
  s->half_kms = kMaxHalfWidthKms;
  const double sigma_v = 15.0 + 35.0 * ew;
  const double b_med = 6.0 + 4.0 * ew;
  for (int c = 0; c < n; ++c) {
    double b = b_med * exp(0.35 * r.normal());
    b = b < 3.0 ? 3.0 : (b > 60.0 ? 60.0 : b);
    double vmax = kMaxHalfWidthKms - 5.0 * b - 40.0;
    if (vmax < 0.0) vmax = 0.0;
    double v = c == 0 ? 0.0 : sigma_v * r.normal();
    v = v > vmax ? vmax : (v < -vmax ? -vmax : v);
    s->comp[c].b = static_cast<float>(b);
    s->comp[c].v = static_cast<float>(v);
    s->comp[c].logn = static_cast<float>(12.0 + 0.4 * r.normal());
  }
}

// Unit-scale optical depth of transition t of MgII system s on the profile samples, for the EW
// solve (MgII components extend to the 330 km/s cap, so τ scales exactly as 10^dlogn and is
// computed once per solve), with each sample's λ δlnλ / (1 + z) weight. Returns the sample count;
// the first sample's index in its arm goes to *first when given.
MGFAST_HD int unit_profile(const System& s, int t, float* tau, float* weight,
                           long long* first = nullptr) {
  Line lines[kMaxComponents];
  std::uint32_t dummy = 0;
  const int n = add_transition_lines(s, t, 0.0, lines, 0, &dummy);
  if (n == 0) return 0;
  const int arm = lines[0].arm;
  double lo = 1e30, hi = -1e30;
  for (int i = 0; i < n; ++i) {
    if (lines[i].x - lines[i].half < lo) lo = lines[i].x - lines[i].half;
    if (lines[i].x + lines[i].half > hi) hi = lines[i].x + lines[i].half;
  }
  const long long j0 = static_cast<long long>(floor((lo + 0.5) * kFine));
  long long j1 = static_cast<long long>(ceil((hi + 0.5) * kFine));
  if (j1 - j0 + 1 > kMaxWindowSamples) j1 = j0 + kMaxWindowSamples - 1;
  const int m = static_cast<int>(j1 - j0 + 1);
  if (first) *first = j0;
  const double scale = grid::kDlnLambda / kFine / (1.0 + s.z);
  for (int j = 0; j < m; ++j) {
    tau[j] = 0.0f;
    weight[j] = static_cast<float>(grid::arm_wavelength(arm, sample_x(j0 + j)) * scale);
  }
  for (int i = 0; i < n; ++i)
    if (lines[i].arm == arm) add_line_tau(lines[i], j0, m, tau);
  return m;
}

// Rest EW (Å) of a unit profile with its optical depth scaled by 10^dlogn: Σ (1 - e^-τ) weight,
// as rendering computes the absorption. Eight running sums (a fixed order, whatever the vector
// width) let the compiler vectorise it.
MGFAST_HD double ew_of_scale(const float* tau, const float* weight, int m, double dlogn) {
  const float f = static_cast<float>(pow(10.0, dlogn));
  double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int j = 0;
  for (; j + 8 <= m; j += 8)
    for (int k = 0; k < 8; ++k)
      acc[k] += static_cast<double>((1.0f - fastmath::exp(-f * tau[j + k])) * weight[j + k]);
  for (int k = 0; j + k < m; ++k)
    acc[k] += static_cast<double>((1.0f - fastmath::exp(-f * tau[j + k])) * weight[j + k]);
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

// Rest equivalent width (Å) of transition t of system s with column densities scaled by
// 10^dlogn, on the profile sampling rendering uses, so that the rendered spectrum carries it.
MGFAST_HD double rest_ew(const System& s, int t, double dlogn) {
  float tau[kMaxWindowSamples], weight[kMaxWindowSamples];
  const int m = unit_profile(s, t, tau, weight);
  return m == 0 ? 0.0 : ew_of_scale(tau, weight, m, dlogn);
}

// Scales the column densities of an MgII system so that its rest EW2796 is `target` (Å), by
// bracketing and then regula falsi (Illinois) in log N on the cached unit profile; the truth
// records the EWs of the final profile as rendered. Returns false if the kinematics cannot reach
// the target (the profile's 330 km/s cap bounds the EW).
MGFAST_HD bool solve_ew(System* s, double target) {
  float tau[kMaxWindowSamples], weight[kMaxWindowSamples];
  const int m = unit_profile(*s, atomic::kMgIIa, tau, weight);
  if (m == 0) return false;
  double lo = -4.0, hi = 0.0;
  double flo = ew_of_scale(tau, weight, m, lo) - target;
  double fhi = ew_of_scale(tau, weight, m, hi) - target;
  for (int i = 0; i < 30 && fhi < 0.0; ++i) {
    lo = hi;
    flo = fhi;
    hi += 1.0;
    fhi = ew_of_scale(tau, weight, m, hi) - target;
  }
  for (int i = 0; i < 30 && flo > 0.0; ++i) {
    hi = lo;
    fhi = flo;
    lo -= 2.0;
    flo = ew_of_scale(tau, weight, m, lo) - target;
  }
  if (fhi < 0.0 || flo > 0.0) return false;
  int side = 0;
  double x = hi;
  for (int it = 0; it < 60; ++it) {
    x = (lo * fhi - hi * flo) / (fhi - flo);
    const double fx = ew_of_scale(tau, weight, m, x) - target;
    if (fabs(fx) < 1e-7 * target || hi - lo < 1e-10) break;
    if (fx > 0.0) {
      hi = x;
      fhi = fx;
      if (side == 1) flo *= 0.5;
      side = 1;
    } else {
      lo = x;
      flo = fx;
      if (side == -1) fhi *= 0.5;
      side = -1;
    }
  }
  for (int c = 0; c < s->n_comp; ++c) s->comp[c].logn += static_cast<float>(x);
  // The truth: the EWs of the final profile (λ2796 from the solve's own samples).
  s->ew[0] = ew_of_scale(tau, weight, m, x);
  s->ew[1] = rest_ew(*s, atomic::kMgIIb, 0.0);
  return true;
}

// Domain-randomised kinematics (Config::kinematics = kKinematicsSky) of an MgII system of rest
// EW2796 `ew` (Å): the laws themselves are drawn per system from broad ranges, so that no single
// parametrisation can be learned (docs/simulator.md, "The sky mode", gives the ranges and their
// sources). Components 1 + Poisson(k EW^γ) (at most kMaxComponents) in 1 + Poisson(c EW)
// subsystems (at most 6) whose centres spread over an extent a + b EW (at least what a saturated
// profile of that EW needs, at most 820 km/s); each subsystem has its own dispersion and column
// density offset; b log-normal about a per-system median, 1-30 km/s.
MGFAST_HD void draw_kinematics_sky(rng::Stream& r, double ew, System* s) {
  s->half_kms = kSkyHalfWidthKms;
  const double comp_rate = exp(r.uniform(log(0.5), log(10.0)));  // components per Å^γ
  const double gamma = r.uniform(0.5, 1.2);
  const double ext_a = r.uniform(0.0, 80.0), ext_b = r.uniform(30.0, 250.0);  // km/s, km/s per Å
  const double clump_rate = r.uniform(0.1, 1.5);
  const double sub_sigma = exp(r.uniform(log(4.0), log(60.0)));  // km/s within a subsystem
  const double b_med = exp(r.uniform(log(2.0), log(12.0)));
  const double b_sig = r.uniform(0.2, 0.7);
  const double n_sig = r.uniform(0.2, 0.9);  // dex, component to component
  int n = 1 + r.poisson(comp_rate * pow(ew, gamma));
  if (n > kMaxComponents) n = kMaxComponents;
  int n_sub = 1 + r.poisson(clump_rate * ew);
  if (n_sub > 6) n_sub = 6;
  if (n_sub > n) n_sub = n;
  // A saturated box of rest EW W spans W/2796 c km/s: the centres spread at least over most of it.
  double extent = ext_a + ext_b * ew;
  const double need = 0.8 * ew / 2796.3543 * voigt::kCKms;
  if (extent < need) extent = need;
  if (extent > 820.0) extent = 820.0;
  // Two subsystems mark the ends of the extent, the others fall between; a single one spreads
  // its components over the extent by its dispersion. recentre() then moves the zero.
  double sigma = sub_sigma;
  if (n_sub == 1 && sigma < 0.25 * extent) sigma = 0.25 * extent;
  double centre[6], offset[6], cum[6], total = 0.0;
  for (int k = 0; k < n_sub; ++k) {
    centre[k] = k == 0 ? -0.5 * extent : (k == 1 ? 0.5 * extent : r.uniform(-0.5, 0.5) * extent);
    if (n_sub == 1) centre[k] = 0.0;
    offset[k] = k == 0 ? 0.0 : 0.5 * r.normal();
    total += exp(0.7 * r.normal());  // share of the components
    cum[k] = total;
  }
  s->n_comp = n;
  for (int c = 0; c < n; ++c) {
    int k = 0;
    if (c > 0) {
      const double u = r.uniform() * total;
      while (k < n_sub - 1 && u > cum[k]) ++k;
    }
    double b = b_med * exp(b_sig * r.normal());
    b = b < 1.0 ? 1.0 : (b > 30.0 ? 30.0 : b);
    const double vmax = kSkyHalfWidthKms - 5.0 * b - 40.0;
    double v = centre[k] + (c == 0 ? 0.0 : sigma * r.normal());
    v = v > vmax ? vmax : (v < -vmax ? -vmax : v);
    s->comp[c].b = static_cast<float>(b);
    s->comp[c].v = static_cast<float>(v);
    s->comp[c].logn = static_cast<float>(12.0 + offset[k] + n_sig * r.normal());
  }
}

// Velocity (km/s) of the absorption-weighted centroid of transition t of system s, relative to
// its zero: Σ (1 - e^-τ) v / Σ (1 - e^-τ) over the profile samples.
MGFAST_HD double absorption_centroid_kms(const System& s, int t) {
  float tau[kMaxWindowSamples], weight[kMaxWindowSamples];
  long long j0 = 0;
  const int m = unit_profile(s, t, tau, weight, &j0);
  if (m == 0) return 0.0;
  double lam0, f, gamma;
  atomic::transition(t, &lam0, &f, &gamma);
  const double lam = lam0 * (1.0 + s.z);
  const int arm = grid::arm_of_wavelength(lam);
  const double x0 = arm_coord(arm < 0 ? 0 : arm, lam);
  double sa = 0.0, sv = 0.0;
  for (int j = 0; j < m; ++j) {
    const double a = 1.0 - exp(-static_cast<double>(tau[j]));
    sa += a;
    sv += a * (sample_x(j0 + j) - x0) * kPixelKms;
  }
  return sa > 0.0 ? sv / sa : 0.0;
}

// Moves an MgII system's components so that the absorption centroid of its λ2796 line lies at
// the system's zero (the sky mode's definition of a system's redshift: what a fit of the whole
// profile measures), keeping each core inside the cap. Returns the shift applied (km/s).
MGFAST_HD double recentre(System* s) {
  const double c = absorption_centroid_kms(*s, atomic::kMgIIa);
  for (int k = 0; k < s->n_comp; ++k) {
    const double vmax = s->half_kms - 5.0 * s->comp[k].b - 40.0;
    double v = s->comp[k].v - c;
    v = v > vmax ? vmax : (v < -vmax ? -vmax : v);
    s->comp[k].v = static_cast<float>(v);
  }
  return c;
}

// Observed λ2796 range (Å) within arm a that keeps both lines `margin` Å inside it.
MGFAST_HD void lambda_range(int a, double margin, double* lo, double* hi) {
  const double ratio = 2803.5315 / 2796.3543;
  *lo = grid::arm_wavelength(a, -0.5) + margin;
  *hi = (grid::arm_wavelength(a, grid::arm_npix(a) - 0.5) - margin) / ratio;
}

// λ2796 flat over the three arms (each weighted by its usable length).
MGFAST_HD double draw_lambda2796(rng::Stream& r, double margin) {
  double len[grid::kNumArms], total = 0.0;
  for (int a = 0; a < grid::kNumArms; ++a) {
    double lo, hi;
    lambda_range(a, margin, &lo, &hi);
    len[a] = hi > lo ? hi - lo : 0.0;
    total += len[a];
  }
  double u = r.uniform() * total;
  for (int a = 0; a < grid::kNumArms; ++a) {
    if (u <= len[a] || a == grid::kNumArms - 1) {
      double lo, hi;
      lambda_range(a, margin, &lo, &hi);
      return lo + (u < len[a] ? u : len[a]);
    }
    u -= len[a];
  }
  return kNoAbsorberLambda;
}

}  // namespace mgfast::sim
