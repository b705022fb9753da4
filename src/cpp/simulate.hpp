// The simulator's physics, shared by the CPU and CUDA drivers: drawing a sightline (absorbers,
// interlopers, forest, quasar continuum, SNR), solving each MgII absorber's column densities for
// its requested EW2796, rendering Voigt profiles through the R = 20000 LSF onto the grid's pixels,
// and noise. Every random draw comes from the counter-based generator in rng.hpp, keyed by
// (seed, spectrum index, stream), so a spectrum never depends on batch, thread or device.
// docs/simulator.md gives every distribution and where it comes from.
#pragma once

#include <cmath>
#include <cstdint>

#include "atomic.hpp"
#include "grid.hpp"
#include "hd.hpp"
#include "resample.hpp"
#include "rng.hpp"
#include "voigt.hpp"

namespace mgfast::sim {

constexpr int kMaxAbsorbers = 4;        // MgII systems per sightline
constexpr int kMaxComponents = 40;      // Voigt components per system (sky kinematics)
constexpr int kMaxPaperComponents = 8;  // ... with the paper-like kinematics
constexpr int kMaxInterlopers = 8;      // other metal systems and unrelated lines per sightline
constexpr int kMaxLines = 4096;         // rendered (component, transition) pairs per sightline
constexpr int kMaxCosmicRays = 16;      // unmasked spikes per sightline
constexpr int kFine = 20;               // profile samples per grid pixel (0.75 km/s)
constexpr double kPixelKms = voigt::kCKms * grid::kDlnLambda;  // 14.99 km/s per pixel
// A system's absorption stays within this velocity of its zero: with the LSF's reach (~42 km/s)
// each MgII line then keeps to its own half of the 770 km/s doublet spacing, so that EW2796 and
// EW2803 can be measured separately.
constexpr double kMaxHalfWidthKms = 330.0;
// The sky kinematics (Config::kinematics = kKinematicsSky) reach further: component cores within
// ±410 km/s (an 820 km/s spread), absorption within 600 km/s of the system's zero. The two lines
// of such a doublet can blend (they are 770 km/s apart); each line's EW is still its own (the
// truth integrates each transition's profile alone).
constexpr double kSkyHalfWidthKms = 600.0;
constexpr int kMaxWindowSamples = 2 * (static_cast<int>(kSkyHalfWidthKms / 14.98962) + 2) * kFine;
// LSF width in pixels: FWHM is one pixel at R = 20000 with Δlnλ = 1/20000.
constexpr double kLsfSigmaPix = 1.0 / resample::kFwhmPerSigma;
constexpr double kKernelReach = 0.5 + resample::kLsfTruncation * kLsfSigmaPix;  // pixels
// The lowest resolution a spectrum may be drawn at (Config::resolution_min), which sizes the
// rendering kernel.
constexpr double kMinResolution = 15000.0;
// The paper's label for "no absorber".
constexpr double kNoAbsorberLambda = 5358.0;

// Random streams: one per kind of draw, so that switching a feature on does not change others.
enum StreamId : std::uint32_t {
  kStreamSightline = 1,
  kStreamAbsorbers = 2,
  kStreamKinematics = 16,  // + absorber index (kinematics retries use the counter)
  kStreamInterlopers = 3,
  kStreamForest = 4,
  kStreamContinuum = 5,
  kStreamDefects = 6,
  kStreamNoise = 7,
  kStreamInstrument = 8,  // resolution, shifts, error scales, edges, correlation, cosmic rays
  kStreamImpostors = 9,   // BAL troughs and DLAs
  kStreamDla = 32,        // + interloper index: a DLA's metal kinematics
};

// How an MgII system's velocity structure is drawn.
enum Kinematics : int {
  kKinematicsPaper = 0,  // one parametrisation (draw_kinematics): the paper-like default
  kKinematicsSky = 1,    // domain-randomised laws per system (draw_kinematics_sky)
};

// Switches and parameters of one simulated set.
struct Config {
  std::uint64_t seed = 0;
  double absorber_fraction = 0.8;       // P(at least one MgII absorber)
  int max_absorbers = 1;                // 1: the paper's setup; up to kMaxAbsorbers
  double ew_min = 0.05, ew_max = 5.15;  // rest EW2796 range (Å), drawn flat
  double edge_margin = 25.0;            // Å kept between either line and an arm edge
  const double* snr_values = nullptr;   // SNR at arm centre, drawn uniformly from this list
  int n_snr = 0;
  double edge_snr_ratio = 2.5;       // SNR at an arm's end is this much lower than at its centre
  int edge_taper_pixels = 420;       // over this many pixels from each end
  const float* snr_shape = nullptr;  // optional (kNPix): snr_profile of every pixel, precomputed
  bool noise = true;
  // Realism (all off: the paper's idealised spectra).
  bool metals = false;           // FeII 2600/2586/2382/2374/2344 and MgI 2852 beside each MgII
  double interloper_rate = 0.0;  // mean number of CIV/SiIV/AlIII doublets and single lines
  bool forest = false;           // Lyα forest below 1215.67 (1 + z_em)
  bool unnormalised = false;     // multiply by a quasar continuum with emission lines
  double continuum_error = 0.0;  // rms of a smooth multiplicative error per arm (e.g. 0.02)
  double sky_residual = 0.0;     // rms amplitude of sky-line residuals, in units of the noise
  double bad_pixel_rate = 0.0;   // mean number of bad-pixel runs per spectrum
  double z_em_min = 1.0, z_em_max = 3.6;  // quasar redshift range (flat)
  // The widened sky (docs/simulator.md, "The sky mode"); all off or neutral by default.
  int kinematics = kKinematicsPaper;
  double blend_fraction = 0.0;  // P(an absorber after the first lies 150-500 km/s from the first)
  double resolution_min = 20000.0, resolution_max = 20000.0;  // LSF R, flat per spectrum
  double wavelength_shift_kms = 0.0;  // rms of a wavelength-calibration shift per arm
  double err_misestimate = 0.0;       // err reported = σ × U(1 − x, 1 + x), per arm
  double correlated_noise = 0.0;      // neighbour correlation ρ ~ U(0, x) per spectrum
  bool random_edges = false;          // per-spectrum SNR edge profile (shape, depth, length)
                                      // and per-arm SNR spread
  double cosmic_ray_rate = 0.0;       // mean number of unmasked spikes (1-3 pixels)
  bool telluric = false;              // O2 γ band and H2O lines in the red arm
  bool impostors = false;             // NaI, CaII, FeII 2586/2600, MgI among the interlopers
  double bal_fraction = 0.0;          // fraction of quasars with BAL troughs
  double dla_rate = 0.0;              // mean number of DLAs (with metals) per sightline
};

struct Component {
  float logn;  // log10 column density (cm^-2) of the system's main ion
  float b;     // Doppler parameter, km/s
  float v;     // velocity offset, km/s
};

// The order is part of the truth format (interloper_kind): append only.
enum SystemKind : int { kMgII = 0, kCIV, kSiIV, kAlIII, kSingle, kNaI, kCaII, kFeII, kMgI, kDLA };

// One absorption system: MgII absorbers and interlopers alike.
struct System {
  int kind = kMgII;
  int n_comp = 0;
  double z = 0.0;             // redshift of the velocity zero
  double ew[2] = {0, 0};      // rest EW of the first two transitions (Å); MgII: 2796 and 2803
  double ew_requested = 0.0;  // MgII: the rest EW2796 drawn, which the column densities meet
  double single_lambda = 0.0, single_f = 0.0;  // kSingle: rest wavelength and f
  double half_kms = kMaxHalfWidthKms;          // absorption reaches at most this far from the zero
  float logn_hi = 0.0f, metallicity = 0.0f;    // kDLA: log N(HI) and [M/H]
  Component comp[kMaxComponents];
};

// Everything drawn for one sightline: the truth table row, and what rendering needs.
struct Sightline {
  int n_abs = 0;
  int n_int = 0;
  float snr = 0.0f;
  float z_em = 0.0f;
  std::uint32_t flags = 0;  // kFlag* bits
  System abs[kMaxAbsorbers];
  System inter[kMaxInterlopers];
  // Per-sightline nuisance parameters, drawn once so that pixels need no further draws.
  float alpha = -1.5f;                     // continuum power-law slope
  float line_scale[10] = {};               // emission-line strengths relative to the composite
  float cont_err[grid::kNumArms][4] = {};  // Legendre coefficients of the continuum error
  float sky[16] = {};                      // sky-line residual amplitudes, in units of the noise
  int n_bad = 0;
  int bad_start[8] = {}, bad_len[8] = {};
  // Instrument (sky mode; neutral values otherwise).
  float resolution = 20000.0f;                           // LSF R of this spectrum
  float shift_kms[grid::kNumArms] = {};                  // wavelength-calibration shift per arm
  float err_scale[grid::kNumArms] = {1.0f, 1.0f, 1.0f};  // reported err / true σ
  float snr_arm[grid::kNumArms] = {1.0f, 1.0f, 1.0f};    // SNR of each arm / the nominal
  float rho = 0.0f;                                      // neighbour-pixel noise correlation
  float edge_ratio = 2.5f;              // random_edges: SNR centre / SNR at an arm end
  int edge_taper = 420, edge_kind = 0;  // ... over this many pixels; 0 cos, 1 linear, 2 exp
  int n_cr = 0;
  int cr_start[kMaxCosmicRays] = {}, cr_len[kMaxCosmicRays] = {};
  float cr_amp[kMaxCosmicRays] = {};                     // in units of the pixel's σ
  float telluric = 0.0f;                                 // strength of the telluric bands (0-1)
  float bal_v1 = 0.0f, bal_v2 = 0.0f, bal_depth = 0.0f;  // BAL trough (km/s blueward), depth
  int bal_lo = 0;                                        // a LoBAL: AlIII and MgII troughs too
};

constexpr std::uint32_t kFlagEwNotReached = 1u << 0;    // an EW solve fell short (kinematics cap)
constexpr std::uint32_t kFlagLinesTruncated = 1u << 1;  // more lines than kMaxLines: some dropped
constexpr std::uint32_t kFlagBAL = 1u << 2;             // the quasar has BAL troughs
constexpr std::uint32_t kFlagDLA = 1u << 3;             // a DLA lies in front of the quasar

// One rendered line: a (component, transition) pair on an arm's pixel coordinates.
struct Line {
  float x;      // centre, fractional pixel within the arm
  float half;   // half-width of its support, pixels
  float tau0;   // central optical-depth factor (τ = tau0 · H(a, u))
  float a;      // damping parameter
  float b_pix;  // Doppler parameter in pixels
  std::int16_t arm;
};

constexpr int kNumSkyLines = 12;       // sky lines whose residuals are simulated (sky_line)
constexpr int kNumEmissionLines = 10;  // quasar broad emission lines (emission_line)

// ---- small helpers -------------------------------------------------------------------------

// Arm-local fractional pixel coordinate of observed wavelength lam in arm a (may be outside).
MGFAST_HD double arm_coord(int a, double lam) {
  return log(lam / grid::arm_lo(a)) / grid::kDlnLambda;
}

// Arm whose pixels cover observed wavelength lam with at least `margin` Å to spare, or -1.
MGFAST_HD int arm_with_margin(double lam, double margin) {
  for (int a = 0; a < grid::kNumArms; ++a) {
    const double lo = grid::arm_wavelength(a, -0.5),
                 hi = grid::arm_wavelength(a, grid::arm_npix(a) - 0.5);
    if (lam - margin >= lo && lam + margin <= hi) return a;
  }
  return -1;
}

// SNR relative to the arm centre at distance d (pixels) from the arm's nearer end: a cosine taper
// from 1/edge_ratio at the end to 1 at `taper` pixels and beyond (after the paper's profile,
// which falls towards the edges over ~420 pixels).
MGFAST_HD double snr_profile(int d, double edge_ratio, int taper) {
  if (d >= taper || taper <= 0) return 1.0;
  const double t = static_cast<double>(d) / taper;
  const double lo = 1.0 / edge_ratio;
  return lo + (1.0 - lo) * 0.5 * (1.0 - cos(3.141592653589793 * t));
}

// Support half-width (km/s) beyond which a component's optical depth is below 1e-4: the Gaussian
// core, or the Lorentzian wings τ0 a / (√π u²) of strong lines; capped at `cap`.
MGFAST_HD double support_kms(double tau0, double a, double b, double cap) {
  double u = sqrt(log(tau0 > 1.0001e-4 ? tau0 / 1e-4 : 1.0001));
  const double uw = sqrt(tau0 * a / (1.7724538509055159 * 1e-4));
  if (uw > u) u = uw;
  const double w = (u + 1.0) * b;
  return w < cap ? w : cap;
}

// Appends the lines of transition t of system s (column densities scaled by 10^dlogn) that fall
// in an arm. Returns the new line count.
MGFAST_HD int add_transition_lines(const System& s, int t, double dlogn, Line* lines, int n,
                                   std::uint32_t* flags) {
  double lam0, f, gamma;
  atomic::transition(t, &lam0, &f, &gamma);
  if (t == atomic::kHILya && s.kind == kSingle) {
    lam0 = s.single_lambda;
    f = s.single_f;
  }
  const double lam_obs = lam0 * (1.0 + s.z);
  for (int c = 0; c < s.n_comp; ++c) {
    const Component& k = s.comp[c];
    const double lam_c = lam_obs * exp(k.v / voigt::kCKms);
    const int arm = grid::arm_of_wavelength(lam_c);
    if (arm < 0) continue;
    if (n >= kMaxLines) {
      *flags |= kFlagLinesTruncated;
      return n;
    }
    const double tau0 = voigt::tau_scale(pow(10.0, k.logn + dlogn), f, lam0, k.b);
    const double a = voigt::damping(gamma, lam0, k.b);
    Line& l = lines[n++];
    l.x = static_cast<float>(arm_coord(arm, lam_c));
    // MgII systems keep every component out to the system's cap (330 km/s, or 600 with the sky
    // kinematics), so that the optical depth scales exactly with N and the EW solved for is the
    // EW rendered; other lines (the forest has hundreds) stop where τ < 1e-4.
    const double reach_kms = s.half_kms - fabs(static_cast<double>(k.v));
    const double half = s.kind == kMgII ? reach_kms : support_kms(tau0, a, k.b, s.half_kms);
    l.half = static_cast<float>((half < reach_kms ? half : reach_kms) / kPixelKms);
    l.tau0 = static_cast<float>(tau0);
    l.a = static_cast<float>(a);
    l.b_pix = static_cast<float>(k.b / kPixelKms);
    l.arm = static_cast<std::int16_t>(arm);
  }
  return n;
}

// Profile sample j of an arm lies at arm pixel coordinate x_j = (j + 1/2)/kFine - 1/2.
MGFAST_HD double sample_x(long long j) { return (j + 0.5) / kFine - 0.5; }

// Adds the optical depth of line l to profile samples j0 .. j0 + count - 1 of its arm (out[0] is
// sample j0), over the samples within its support. The sample's offset from the centre is an
// exact integer plus one fraction per line, so u stays accurate in float; the loop is
// straight-line code that the compiler vectorises.
MGFAST_HD void add_line_tau(const Line& l, long long j0, long long count, float* out) {
  long long a = static_cast<long long>(ceil((l.x - l.half + 0.5) * kFine - 0.5)) - j0;
  long long b = static_cast<long long>(floor((l.x + l.half + 0.5) * kFine - 0.5)) - j0;
  a = a < 0 ? 0 : a;
  b = b > count - 1 ? count - 1 : b;
  if (a > b) return;
  const double centre = (static_cast<double>(l.x) + 0.5) * kFine - 0.5;  // in samples
  const long long nearest = static_cast<long long>(floor(centre + 0.5));
  const float frac = static_cast<float>(static_cast<double>(nearest) - centre);
  const int offset = static_cast<int>(j0 - nearest);  // sample j sits offset + j from `nearest`
  const float inv = 1.0f / (static_cast<float>(kFine) * l.b_pix);
  const float tau0 = l.tau0, damping = l.a;
  const int ia = static_cast<int>(a), ib = static_cast<int>(b);
  for (int j = ia; j <= ib; ++j) {
    const float u = (static_cast<float>(offset + j) + frac) * inv;
    out[j] += tau0 * voigt::hjerting_f(damping, u);
  }
}

// 1 - e^-τ of each sample, in place: the absorbed fraction, as rendering and the EW solve see it.
MGFAST_HD void absorbed_fraction(float* tau, long long count) {
  for (long long j = 0; j < count; ++j) tau[j] = 1.0f - fastmath::exp(-tau[j]);
}

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

// ---- the sightline ------------------------------------------------------------------------

// Instrument and reduction of the sky mode, from their own stream (docs/simulator.md): the LSF's
// R, per-arm wavelength shifts, error-array scales and SNR spread, the SNR edge profile, noise
// correlation and cosmic rays.
MGFAST_HD void plan_instrument(const Config& cfg, std::uint64_t index, Sightline* out) {
  Sightline& sl = *out;
  rng::Stream r(cfg.seed, index, kStreamInstrument);
  sl.resolution = static_cast<float>(cfg.resolution_max > cfg.resolution_min
                                         ? r.uniform(cfg.resolution_min, cfg.resolution_max)
                                         : cfg.resolution_min);
  for (int a = 0; a < grid::kNumArms; ++a) {
    sl.shift_kms[a] = static_cast<float>(cfg.wavelength_shift_kms * r.normal());
    sl.err_scale[a] = static_cast<float>(1.0 + cfg.err_misestimate * r.uniform(-1.0, 1.0));
    // Arms differ in throughput: a log-normal spread of 0.25 about the nominal SNR.
    sl.snr_arm[a] = cfg.random_edges ? static_cast<float>(exp(0.25 * r.normal())) : 1.0f;
  }
  sl.rho = static_cast<float>(cfg.correlated_noise * r.uniform());
  sl.edge_ratio = static_cast<float>(cfg.edge_snr_ratio);
  sl.edge_taper = cfg.edge_taper_pixels;
  if (cfg.random_edges) {
    sl.edge_ratio = static_cast<float>(r.uniform(1.2, 5.0));
    sl.edge_taper = 100 + r.integer(700);
    sl.edge_kind = r.integer(3);
  }
  if (cfg.cosmic_ray_rate > 0.0) {
    int n = r.poisson(cfg.cosmic_ray_rate);
    sl.n_cr = n > kMaxCosmicRays ? kMaxCosmicRays : n;
    for (int i = 0; i < sl.n_cr; ++i) {
      sl.cr_start[i] = r.integer(grid::kNPix);
      sl.cr_len[i] = 1 + r.integer(3);
      sl.cr_amp[i] = static_cast<float>(exp(r.uniform(log(3.0), log(80.0))));
    }
  }
  if (cfg.telluric) sl.telluric = static_cast<float>(r.uniform());
}

// Impostors beyond the interlopers (sky mode): BAL troughs (a fraction of quasars; outflows of
// 0-25,000 km/s, 2,000-10,000 km/s wide; a fifth of them LoBALs with AlIII and MgII troughs) and
// DLAs (log N(HI) 20.3-21.5, [M/H] −2 to −0.3, with their low-ion metals) between z = 1.45,
// beyond which their own MgII leaves the arms, and the quasar.
MGFAST_HD void plan_impostors(const Config& cfg, std::uint64_t index, Sightline* out) {
  Sightline& sl = *out;
  rng::Stream r(cfg.seed, index, kStreamImpostors);
  if (cfg.bal_fraction > 0.0 && r.uniform() < cfg.bal_fraction) {
    sl.bal_v1 = static_cast<float>(r.uniform(0.0, 20000.0));
    sl.bal_v2 = static_cast<float>(sl.bal_v1 + r.uniform(2000.0, 10000.0));
    sl.bal_depth = static_cast<float>(r.uniform(0.15, 0.9));
    sl.bal_lo = r.uniform() < 0.2 ? 1 : 0;
    sl.flags |= kFlagBAL;
  }
  if (cfg.dla_rate > 0.0 && sl.z_em > 1.46f) {
    int n = r.poisson(cfg.dla_rate);
    for (int i = 0; i < n && sl.n_int < kMaxInterlopers; ++i) {
      System& s = sl.inter[sl.n_int];
      s = System();
      s.kind = kDLA;
      s.z = r.uniform(1.45, static_cast<double>(sl.z_em) - 0.01);
      s.logn_hi = static_cast<float>(r.uniform(20.3, 21.5));
      s.metallicity = static_cast<float>(r.uniform(-2.0, -0.3));
      rng::Stream rk(cfg.seed, index, kStreamDla + sl.n_int);
      // The low ions' kinematics: as an MgII system of 0.3-2.5 Å; component columns normalised
      // so that their sum is 1 (log 0): each element's total is added when its lines are built.
      draw_kinematics_sky(rk, rk.uniform(0.3, 2.5), &s);
      double tot = 0.0;
      for (int c = 0; c < s.n_comp; ++c) tot += pow(10.0, static_cast<double>(s.comp[c].logn));
      const double norm = log10(tot);
      for (int c = 0; c < s.n_comp; ++c) s.comp[c].logn = static_cast<float>(s.comp[c].logn - norm);
      sl.flags |= kFlagDLA;
      ++sl.n_int;
    }
  }
}

// Draws everything about spectrum `index` except the per-pixel noise and forest: SNR, z_em, the
// MgII absorbers (solved for their EWs) and the interlopers.
MGFAST_HD void plan_sightline(const Config& cfg, std::uint64_t index, Sightline* out) {
  Sightline& sl = *out;
  sl = Sightline();
  rng::Stream r(cfg.seed, index, kStreamSightline);
  sl.snr = static_cast<float>(cfg.n_snr > 0 ? cfg.snr_values[r.integer(cfg.n_snr)] : 10.0);
  sl.z_em = static_cast<float>(r.uniform(cfg.z_em_min, cfg.z_em_max));

  rng::Stream ra(cfg.seed, index, kStreamAbsorbers);
  int n_abs = 0;
  if (ra.uniform() < cfg.absorber_fraction) n_abs = 1 + ra.integer(cfg.max_absorbers);
  double z_max = -1.0;
  for (int i = 0; i < n_abs; ++i) {
    System& s = sl.abs[sl.n_abs];
    s.kind = kMgII;
    const double ew = ra.uniform(cfg.ew_min, cfg.ew_max);
    s.ew_requested = ew;
    // Doublets do not overlap: each keeps 10 Å clear of the others' doublet windows, except a
    // blend (sky mode): 150-500 km/s from the first absorber, on either side.
    double lam = 0.0;
    bool placed = false;
    if (cfg.blend_fraction > 0.0 && sl.n_abs > 0 && ra.uniform() < cfg.blend_fraction) {
      const double dv = ra.uniform(150.0, 500.0) * (ra.uniform() < 0.5 ? -1.0 : 1.0);
      lam = 2796.3543 * (1.0 + sl.abs[0].z) * exp(dv / voigt::kCKms);
      const double a = arm_with_margin(lam, cfg.edge_margin);
      placed = a >= 0 && a == arm_with_margin(lam * 1.00257, cfg.edge_margin);
    }
    for (int tries = 0; tries < 32 && !placed; ++tries) {
      lam = draw_lambda2796(ra, cfg.edge_margin);
      placed = true;
      for (int k = 0; k < sl.n_abs; ++k) {
        const double other = 2796.3543 * (1.0 + sl.abs[k].z);
        if (lam < other * 1.00257 + 10.0 && lam * 1.00257 + 10.0 > other) placed = false;
      }
    }
    if (!placed) continue;
    s.z = lam / 2796.3543 - 1.0;
    rng::Stream rk(cfg.seed, index, kStreamKinematics + i);
    bool ok = false;
    for (int attempt = 0; attempt < 8 && !ok; ++attempt) {
      if (cfg.kinematics == kKinematicsSky) {
        draw_kinematics_sky(rk, ew, &s);
        // Solve, put the absorption centroid at the zero, solve again (the shift changes the EW
        // only where a core meets the cap).
        ok = solve_ew(&s, ew);
        if (ok) {
          recentre(&s);
          ok = solve_ew(&s, ew);
        }
      } else {
        draw_kinematics(rk, ew, &s);
        ok = solve_ew(&s, ew);
      }
    }
    if (!ok) {  // not rendered and not labelled: the truth never claims an invisible absorber
      sl.flags |= kFlagEwNotReached;
      continue;
    }
    if (s.z > z_max) z_max = s.z;
    ++sl.n_abs;
  }
  // The quasar lies behind its absorbers.
  if (sl.z_em < z_max + 0.05) sl.z_em = static_cast<float>(z_max + 0.05 + 0.5 * r.uniform());

  if (cfg.interloper_rate > 0.0) {
    rng::Stream ri(cfg.seed, index, kStreamInterlopers);
    int n = ri.poisson(cfg.interloper_rate);
    if (n > kMaxInterlopers) n = kMaxInterlopers;
    for (int i = 0; i < n; ++i) {
      System& s = sl.inter[sl.n_int];
      s = System();
      // CIV, SiIV, AlIII doublets or an unrelated line; with impostors also NaI, CaII, the FeII
      // 2586/2600 pair and MgI 2852, each at its own redshift.
      const int kind = 1 + ri.integer(cfg.impostors ? 8 : 4);
      s.kind = kind;
      double lam0 = 0.0;
      if (kind == kCIV) lam0 = 1548.2040;
      if (kind == kSiIV) lam0 = 1393.7602;
      if (kind == kAlIII) lam0 = 1854.7184;
      if (kind == kNaI) lam0 = 5891.5833;
      if (kind == kCaII) lam0 = 3934.7750;
      if (kind == kFeII) lam0 = 2586.6500;
      if (kind == kMgI) lam0 = 2852.9631;
      // Observed position flat over the arms; the system must lie in front of the quasar.
      const double lam = draw_lambda2796(ri, 5.0);
      if (kind == kSingle) {
        // An unidentified line: a metal line of another system, seen alone (f λ as MgII 2796).
        s.single_lambda = 2796.3543;
        s.single_f = 0.6155;
        s.z = lam / 2796.3543 - 1.0;
      } else {
        s.z = lam / lam0 - 1.0;
        // The Galaxy's own CaII H&K (z ≈ 0, at 3934 Å in the blue arm) in a third of them.
        if (kind == kCaII && ri.uniform() < 0.33) s.z = 1e-4 * ri.normal();
        if (s.z >= sl.z_em || s.z < -0.001) continue;
      }
      const double ew = ri.uniform(0.05, 1.5);
      if (cfg.kinematics == kKinematicsSky)
        draw_kinematics_sky(ri, ew, &s);
      else
        draw_kinematics(ri, ew, &s);
      const double strength = ri.uniform(12.5, 14.5);  // log N of the main component
      for (int c = 0; c < s.n_comp; ++c) s.comp[c].logn += static_cast<float>(strength - 12.0);
      ++sl.n_int;
    }
  }

  rng::Stream rc(cfg.seed, index, kStreamContinuum);
  sl.alpha = static_cast<float>(-1.5 + 0.3 * rc.normal());
  for (int i = 0; i < kNumEmissionLines; ++i)
    sl.line_scale[i] = static_cast<float>(exp(0.3 * rc.normal()));
  // The four coefficients share the requested rms equally.
  for (int a = 0; a < grid::kNumArms; ++a)
    for (int k = 0; k < 4; ++k)
      sl.cont_err[a][k] = static_cast<float>(0.5 * cfg.continuum_error * rc.normal());
  rng::Stream rd(cfg.seed, index, kStreamDefects);
  for (int i = 0; i < kNumSkyLines; ++i)
    sl.sky[i] = static_cast<float>(cfg.sky_residual * rd.normal());
  if (cfg.bad_pixel_rate > 0.0) {
    int n = rd.poisson(cfg.bad_pixel_rate);
    sl.n_bad = n > 8 ? 8 : n;
    for (int i = 0; i < sl.n_bad; ++i) {
      // Runs of 1-30 pixels (dead columns, cosmic-ray residuals, saturated sky).
      sl.bad_start[i] = rd.integer(grid::kNPix);
      sl.bad_len[i] = 1 + rd.integer(30);
    }
  }
  plan_instrument(cfg, index, &sl);
  plan_impostors(cfg, index, &sl);
}

// Forest: Lyα lines along the sightline below 1215.67 (1 + z_em), generated in order of redshift
// as a Poisson process with dN/dz = 680 ((1 + z)/3.5)^3.3 for 12.5 < log N(HI) < 17 with
// f(N) ∝ N^-1.5 and b ~ N(26, 6) km/s (12-60), after Kim et al. (2002) and Janknecht et al. (2006);
// the normalisation and slope make the mean transmitted flux follow τ_eff = 0.0018 (1 + z)^3.92
// (Faucher-Giguère et al. 2008), as scripts/simulator_report.py measures.
// Appends to lines; returns the new count.
MGFAST_HD int add_forest_lines(const Config& cfg, std::uint64_t index, const Sightline& sl,
                               Line* lines, int n, std::uint32_t* flags) {
  const double lam_max = 1215.6701 * (1.0 + sl.z_em);
  const double lam_min = grid::arm_wavelength(0, -0.5) * 0.995;
  if (lam_max <= lam_min) return n;
  rng::Stream r(cfg.seed, index, kStreamForest);
  double z = lam_min / 1215.6701 - 1.0;
  const double z_end = lam_max / 1215.6701 - 1.0;
  System s;
  s.kind = kSingle;
  s.n_comp = 1;
  s.single_lambda = 1215.6701;
  s.single_f = 0.4164;
  for (;;) {
    const double rate = 680.0 * pow((1.0 + z) / 3.5, 3.3);
    z += -log(r.uniform()) / rate;
    if (z >= z_end) break;
    // Inverse CDF of N^-1.5 between 10^12.5 and 10^17.
    const double u = r.uniform();
    const double n_lo = pow(10.0, -6.25), n_hi = pow(10.0, -8.5);  // N^-0.5 at the bounds
    const double x = n_lo + u * (n_hi - n_lo);
    const double logn = -2.0 * log10(x);
    double b = 26.0 + 6.0 * r.normal();
    b = b < 12.0 ? 12.0 : (b > 60.0 ? 60.0 : b);
    s.z = z;
    s.comp[0].logn = static_cast<float>(logn);
    s.comp[0].b = static_cast<float>(b);
    s.comp[0].v = 0.0f;
    n = add_transition_lines(s, atomic::kHILya, 0.0, lines, n, flags);
    if (n >= kMaxLines) break;
  }
  return n;
}

// A DLA's lines: Lyα of its HI (one component, damping wings out to 8,000 km/s) and its low-ion
// metals, each element's total column log N(HI) + [M/H] + its solar abundance (Asplund et al.
// 2009; Fe depleted by 0.4 dex), spread over the system's components (whose columns sum to 1).
MGFAST_HD int add_dla_lines(const System& s, Line* lines, int n, std::uint32_t* flags) {
  System h;
  h.kind = kSingle;
  h.z = s.z;
  h.n_comp = 1;
  h.single_lambda = 1215.6701;
  h.single_f = 0.4164;
  h.half_kms = 8000.0;
  h.comp[0].logn = s.logn_hi;
  h.comp[0].b = 20.0f;
  h.comp[0].v = 0.0f;
  n = add_transition_lines(h, atomic::kHILya, 0.0, lines, n, flags);
  const double base = static_cast<double>(s.logn_hi) + s.metallicity - 12.0;
  const int ions[11] = {atomic::kSiII1260, atomic::kOI1302,   atomic::kSiII1304, atomic::kCII1334,
                        atomic::kSiII1526, atomic::kFeII1608, atomic::kAlII1670, atomic::kFeII2344,
                        atomic::kFeII2382, atomic::kFeII2586, atomic::kFeII2600};
  const double abundance[11] = {7.51, 8.69, 7.51, 8.43, 7.51, 7.10, 6.45, 7.10, 7.10, 7.10, 7.10};
  for (int i = 0; i < 11; ++i)
    n = add_transition_lines(s, ions[i], base + abundance[i], lines, n, flags);
  return n;
}

// The transitions of an interloper kind (not kDLA): a doublet or pair, or one line (kSingle:
// its own λ and f, on the Lyα slot). Returns how many went into t.
MGFAST_HD int interloper_transitions(int kind, int* t) {
  switch (kind) {
    case kCIV:
      t[0] = atomic::kCIVa, t[1] = atomic::kCIVb;
      return 2;
    case kSiIV:
      t[0] = atomic::kSiIVa, t[1] = atomic::kSiIVb;
      return 2;
    case kAlIII:
      t[0] = atomic::kAlIIIa, t[1] = atomic::kAlIIIb;
      return 2;
    case kNaI:
      t[0] = atomic::kNaIa, t[1] = atomic::kNaIb;
      return 2;
    case kCaII:
      t[0] = atomic::kCaIIK, t[1] = atomic::kCaIIH;
      return 2;
    case kFeII:
      t[0] = atomic::kFeII2586, t[1] = atomic::kFeII2600;
      return 2;
    case kMgI:
      t[0] = atomic::kMgI2852;
      return 1;
    default:
      t[0] = atomic::kHILya;  // kSingle
      return 1;
  }
}

// All lines of a sightline, sorted by (arm, centre) so that rendering can search them.
MGFAST_HD int build_lines(const Config& cfg, std::uint64_t index, Sightline* sl, Line* lines) {
  int n = 0;
  for (int i = 0; i < sl->n_abs; ++i) {
    const System& s = sl->abs[i];
    n = add_transition_lines(s, atomic::kMgIIa, 0.0, lines, n, &sl->flags);
    n = add_transition_lines(s, atomic::kMgIIb, 0.0, lines, n, &sl->flags);
    if (cfg.metals) {
      // Companions scale from MgII: log N(FeII) = log N(MgII) - 0.2..1.0, log N(MgI) = -1.8..-1.0
      // (typical of strong MgII systems; Churchill et al. 2003, Rigby et al. 2002).
      rng::Stream rm(cfg.seed, index, kStreamKinematics + 8 + i);
      const double dfe = -rm.uniform(0.2, 1.0), dmg = -rm.uniform(1.0, 1.8);
      n = add_transition_lines(s, atomic::kMgI2852, dmg, lines, n, &sl->flags);
      for (int t = atomic::kFeII2600; t <= atomic::kFeII2344; ++t)
        n = add_transition_lines(s, t, dfe, lines, n, &sl->flags);
    }
  }
  for (int i = 0; i < sl->n_int; ++i) {
    const System& s = sl->inter[i];
    if (s.kind == kDLA) {
      n = add_dla_lines(s, lines, n, &sl->flags);
      continue;
    }
    int t[2];
    const int nt = interloper_transitions(s.kind, t);
    for (int k = 0; k < nt; ++k) n = add_transition_lines(s, t[k], 0.0, lines, n, &sl->flags);
  }
  if (cfg.forest) n = add_forest_lines(cfg, index, *sl, lines, n, &sl->flags);
  // A wavelength-calibration error moves every feature of an arm (the truth keeps the true λ).
  if (cfg.wavelength_shift_kms > 0.0)
    for (int i = 0; i < n; ++i)
      lines[i].x += static_cast<float>(sl->shift_kms[lines[i].arm] / kPixelKms);
  // Insertion sort: the forest arrives sorted, the few metal lines are moved into place.
  for (int i = 1; i < n; ++i) {
    const Line l = lines[i];
    int j = i - 1;
    while (j >= 0 && (lines[j].arm > l.arm || (lines[j].arm == l.arm && lines[j].x > l.x))) {
      lines[j + 1] = lines[j];
      --j;
    }
    lines[j + 1] = l;
  }
  return n;
}

// The LSF-and-pixel weights of the profile samples: sample j = kFine k + m of an arm (its position
// x = (j + 1/2)/kFine − 1/2) contributes W[m − kKernelM0] / kFine to pixel k, with
// W = Φ((k + 1/2 − x)/σ) − Φ((k − 1/2 − x)/σ), which depends on m only. Summed over all pixels the
// weights of a sample are 1, so the rendered absorption carries the samples' EW exactly.
// At R = 20000 (FWHM one pixel) the kernel spans kKernelM0 .. kKernelM1; at other resolutions
// (Config::resolution_min/max) it is sized the same way from its σ, at most kMaxKernelSize.
constexpr int kKernelM0 = -static_cast<int>(kKernelReach * kFine) - 1;
constexpr int kKernelM1 = static_cast<int>(kKernelReach * kFine) + kFine;
constexpr int kKernelSize = kKernelM1 - kKernelM0 + 1;
constexpr double kMaxKernelReach =
    0.5 + resample::kLsfTruncation * 20000.0 / kMinResolution / resample::kFwhmPerSigma;
constexpr int kMaxKernelSize = 2 * static_cast<int>(kMaxKernelReach * kFine) + kFine + 2;

// The rendering kernel of one resolution: weights w[0 .. size) for m = m0 .. m0 + size − 1.
struct Kernel {
  double reach = kKernelReach;  // pixels
  int m0 = kKernelM0, size = kKernelSize;
  double w[kMaxKernelSize];
};

MGFAST_HD void kernel_weights(double resolution, Kernel* k) {
  const bool nominal = resolution == 20000.0;  // the exact constants of the default
  const double sigma = nominal ? kLsfSigmaPix : 20000.0 / resolution / resample::kFwhmPerSigma;
  k->reach = nominal ? kKernelReach : 0.5 + resample::kLsfTruncation * sigma;
  k->m0 = -static_cast<int>(k->reach * kFine) - 1;
  k->size = static_cast<int>(k->reach * kFine) + kFine - k->m0 + 1;
  const double inv = 1.0 / (sigma * 1.4142135623730951);
  for (int i = 0; i < k->size; ++i) {
    const double d = (k->m0 + i + 0.5) / kFine - 0.5;  // x − k
    k->w[i] = 0.5 * (erf((0.5 - d) * inv) - erf((-0.5 - d) * inv)) / kFine;
  }
}

// Σ w[m] a[m] over m < count, in eight running sums (a fixed order, whatever the vector width).
MGFAST_HD double dot8(const double* w, const float* a, int count) {
  double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int m = 0;
  for (; m + 8 <= count; m += 8)
    for (int k = 0; k < 8; ++k) acc[k] += w[m + k] * static_cast<double>(a[m + k]);
  for (int k = 0; m + k < count; ++k) acc[k] += w[m + k] * static_cast<double>(a[m + k]);
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

// Samples per rendering window (an arm's worth: 2144 pixels × kFine, plus the kernel's reach).
constexpr int kMaxArmSamples = (2144 + 8) * kFine;

// Transmission of every grid pixel of a sightline into `trans` (kNPix), from its sorted lines:
// per arm, the lines' supports are merged into windows; in each, the optical depth is scattered
// onto the profile samples once, turned into absorption, and gathered into pixels with the fixed
// weights of the spectrum's resolution. `absorb` is scratch of kMaxArmSamples floats.
MGFAST_HD void render_spectrum(const Line* lines, int n, double resolution, float* absorb,
                               float* trans) {
  Kernel kern;
  kernel_weights(resolution, &kern);
  const double* w = kern.w;
  const double reach = kern.reach;
  for (int p = 0; p < grid::kNPix; ++p) trans[p] = 1.0f;
  int i = 0;
  while (i < n) {
    // A window: consecutive lines of one arm whose sample ranges (support + kernel) overlap.
    const int arm = lines[i].arm;
    const int npix = grid::arm_npix(arm);
    double lo = lines[i].x - lines[i].half, hi = lines[i].x + lines[i].half;
    int k = i + 1;
    while (k < n && lines[k].arm == arm && lines[k].x - lines[k].half <= hi + 2.0 * reach) {
      if (lines[k].x + lines[k].half > hi) hi = lines[k].x + lines[k].half;
      if (lines[k].x - lines[k].half < lo) lo = lines[k].x - lines[k].half;
      ++k;
    }
    // Pixels the window can touch, and the samples they read.
    int p0 = static_cast<int>(floor(lo - reach)), p1 = static_cast<int>(ceil(hi + reach));
    p0 = p0 < 0 ? 0 : p0;
    p1 = p1 > npix - 1 ? npix - 1 : p1;
    if (p0 <= p1) {
      const long long j0 = static_cast<long long>(p0) * kFine + kern.m0;
      long long ns = static_cast<long long>(p1 - p0) * kFine + kern.size;
      if (ns > kMaxArmSamples) ns = kMaxArmSamples;
      for (long long j = 0; j < ns; ++j) absorb[j] = 0.0f;
      for (int q = i; q < k; ++q) add_line_tau(lines[q], j0, ns, absorb);
      absorbed_fraction(absorb, ns);
      for (int p = p0; p <= p1; ++p) {
        const long long base = static_cast<long long>(p - p0) * kFine;
        const long long left = ns - base;
        const int taps = left < kern.size ? static_cast<int>(left) : kern.size;
        // Windows' samples are disjoint: each subtracts its own absorption.
        trans[grid::arm_start(arm) + p] -= static_cast<float>(dot8(w, absorb + base, taps));
      }
    }
    i = k;
  }
}

// ---- continuum, defects, noise ----------------------------------------------------------------

// Broad emission lines of the quasar continuum: rest λ (Å), peak relative to the power law,
// FWHM (km/s), from composite spectra (Vanden Berk et al. 2001), rounded.
MGFAST_HD void emission_line(int i, double* lam, double* peak, double* fwhm) {
  const double t[10][3] = {{1215.67, 3.0, 4000.0}, {1240.14, 0.5, 4000.0}, {1399.8, 0.25, 5000.0},
                           {1549.06, 1.2, 4500.0}, {1908.73, 0.5, 5000.0}, {2326.0, 0.08, 4000.0},
                           {2798.75, 0.6, 4000.0}, {3727.0, 0.05, 3000.0}, {4341.7, 0.2, 3500.0},
                           {4862.7, 0.5, 4000.0}};
  *lam = t[i][0];
  *peak = t[i][1];
  *fwhm = t[i][2];
}

// Quasar continuum at grid pixel p: power law f_λ ∝ λ^α (1 at 5000 Å) plus Gaussian broad
// emission lines at z_em, each scaled by the sightline's log-normal factor.
MGFAST_HD double quasar_continuum(const Sightline& sl, int p) {
  const double lam = grid::wavelength(p);
  double c = pow(lam / 5000.0, static_cast<double>(sl.alpha));
  for (int i = 0; i < kNumEmissionLines; ++i) {
    double rest, peak, fwhm;
    emission_line(i, &rest, &peak, &fwhm);
    const double mu = rest * (1.0 + sl.z_em);
    const double sig = mu * fwhm / voigt::kCKms / resample::kFwhmPerSigma;
    const double d = (lam - mu) / sig;
    if (d * d < 50.0) c += peak * sl.line_scale[i] * pow(mu / 5000.0, sl.alpha) * exp(-0.5 * d * d);
  }
  return c;
}

// Smooth multiplicative continuum error of pixel p: per arm a cubic (Legendre P0..P3) in the arm
// coordinate, coefficients drawn per sightline (a continuum fit off by a few per cent).
MGFAST_HD double continuum_error(const Sightline& sl, int p) {
  const int arm = grid::arm_of_pixel(p);
  const double t = 2.0 * (p - grid::arm_start(arm)) / (grid::arm_npix(arm) - 1.0) - 1.0;
  const float* c = sl.cont_err[arm];
  return 1.0 + c[0] + c[1] * t + c[2] * 0.5 * (3 * t * t - 1) +
         c[3] * 0.5 * (5 * t * t * t - 3 * t);
}

// Bright night-sky lines in the arms (vacuum Å, approximate; Osterbrock et al. 1996): residuals of
// their subtraction are narrow features of either sign.
MGFAST_HD double sky_line(int i) {
  switch (i) {
    case 0:
      return 4047.7;  // Hg I (light pollution)
    case 1:
      return 5578.9;  // [OI]
    case 2:
      return 6302.0;  // [OI]
    case 3:
      return 6365.5;  // [OI]
    case 4:
      return 6259.7;  // OH
    case 5:
      return 6289.2;  // OH
    case 6:
      return 6467.2;  // OH
    case 7:
      return 6499.0;  // OH
    case 8:
      return 6555.4;  // OH
    case 9:
      return 6606.0;  // OH
    case 10:
      return 6759.6;  // OH
    default:
      return 5462.3;  // Hg I
  }
}
// SNR relative to the arm centre at distance d (pixels) from the nearer end, with the profile
// shape drawn per spectrum (random_edges): 0 the cosine taper of snr_profile, 1 linear, 2 an
// exponential approach (1 − e^(−3 d / taper), reaching 95 % at `taper`).
MGFAST_HD double snr_profile_kind(int d, double edge_ratio, int taper, int kind) {
  if (kind == 0) return snr_profile(d, edge_ratio, taper);
  const double lo = 1.0 / edge_ratio;
  if (kind == 1) return d >= taper ? 1.0 : lo + (1.0 - lo) * static_cast<double>(d) / taper;
  return lo + (1.0 - lo) * (1.0 - exp(-3.0 * static_cast<double>(d) / taper));
}

// BAL troughs at the observed λ (docs/simulator.md): CIV and SiIV (and AlIII, MgII for a LoBAL)
// absorbed between bal_v1 and bal_v2 km/s blueward of the quasar's emission, with soft edges.
MGFAST_HD double bal_transmission(const Sightline& sl, double lam) {
  if (sl.bal_depth <= 0.0f) return 1.0;
  const double rest[4] = {1549.06, 1396.76, 1857.4, 2799.1};
  const double depth[4] = {1.0, 0.7, 0.6, 0.6};
  double t = 1.0;
  for (int i = 0; i < (sl.bal_lo ? 4 : 2); ++i) {
    const double v = voigt::kCKms * log(rest[i] * (1.0 + sl.z_em) / lam);  // outflow velocity
    if (v < sl.bal_v1 - 2000.0 || v > sl.bal_v2 + 2000.0) continue;
    const double box =
        0.25 * (1.0 + tanh((v - sl.bal_v1) / 400.0)) * (1.0 + tanh((sl.bal_v2 - v) / 400.0));
    t *= 1.0 - sl.bal_depth * depth[i] * box;
  }
  return t;
}

// Telluric absorption in the red arm: the O2 γ band (lines every 1.9 Å over 6277-6310 Å) and weak
// H2O lines (6470-6580 Å), narrow Gaussians (0.6 pixel) of depths up to 25 % and 10 % scaled by
// the sightline's strength (airmass and water vapour). An approximation of the bands' placement
// and strength, not a line list.
MGFAST_HD double telluric_transmission(const Sightline& sl, double lam) {
  if (sl.telluric <= 0.0f || lam < 6270.0 || lam > 6590.0) return 1.0;
  const double width = lam / 20000.0 * 0.6;
  double t = 1.0;
  for (int i = 0; i < 18; ++i) {
    const double c = 6277.0 + 1.9 * i;
    const double d = (lam - c) / width;
    if (d * d < 30.0)
      t *= 1.0 - 0.25 * sl.telluric * (0.5 + 0.5 * sin(1.7 * i)) * exp(-0.5 * d * d);
    const double c2 = 6470.0 + 6.3 * i;
    const double d2 = (lam - c2) / width;
    if (d2 * d2 < 30.0)
      t *= 1.0 - 0.10 * sl.telluric * (0.5 + 0.5 * cos(2.3 * i)) * exp(-0.5 * d2 * d2);
  }
  return t;
}

// Stage 1, per spectrum: draw the sightline and build its sorted line list. Returns the number of
// lines (at most kMaxLines).
MGFAST_HD int stage_plan(const Config& cfg, std::uint64_t index, Sightline* sl, Line* lines) {
  plan_sightline(cfg, index, sl);
  return build_lines(cfg, index, sl, lines);
}

// Stage 2, per spectrum: the noiseless transmission of every pixel (render_spectrum), the truth a
// perfect detector sees. Stage 3, per grid pixel: continuum, defects and noise on top of it, from
// the pixel's standard normal z (normal_pair). Writes the flux and its 1-sigma error (0 for a bad
// pixel, whose flux is 0).
MGFAST_HD void stage_pixel(const Config& cfg, const Sightline& sl, const float* trans, int p,
                           float z, float* flux, float* err) {
  double t = trans[p];
  if (sl.bal_depth > 0.0f || sl.telluric > 0.0f) {
    const double lam = grid::wavelength(p);
    t *= bal_transmission(sl, lam) * telluric_transmission(sl, lam);
  }
  const double cont = cfg.unnormalised ? quasar_continuum(sl, p) : 1.0;
  double f = cont * t;
  if (!cfg.unnormalised && cfg.continuum_error > 0.0) f *= continuum_error(sl, p);
  const int arm = grid::arm_of_pixel(p);
  double shape;
  if (cfg.random_edges)
    shape = sl.snr_arm[arm] *
            snr_profile_kind(grid::edge_distance(p), sl.edge_ratio, sl.edge_taper, sl.edge_kind);
  else
    shape = cfg.snr_shape
                ? cfg.snr_shape[p]
                : snr_profile(grid::edge_distance(p), cfg.edge_snr_ratio, cfg.edge_taper_pixels);
  const double sigma = cont / (sl.snr * shape);
  if (cfg.sky_residual > 0.0) {
    const double lam = grid::wavelength(p);
    for (int i = 0; i < kNumSkyLines; ++i) {
      const double dx = (lam - sky_line(i)) / (lam * grid::kDlnLambda);  // pixels
      if (dx * dx < 16.0) f += sl.sky[i] * sigma * exp(-0.5 * dx * dx / 0.49);
    }
  }
  if (cfg.noise) f += sigma * static_cast<double>(z);
  for (int i = 0; i < sl.n_cr; ++i)  // cosmic rays: unmasked, the error array does not know
    if (p >= sl.cr_start[i] && p < sl.cr_start[i] + sl.cr_len[i]) f += sl.cr_amp[i] * sigma;
  double e = sigma * sl.err_scale[arm];
  for (int i = 0; i < sl.n_bad; ++i)
    if (p >= sl.bad_start[i] && p < sl.bad_start[i] + sl.bad_len[i]) {
      f = 0.0;
      e = 0.0;
    }
  flux[p] = static_cast<float>(f);
  err[p] = static_cast<float>(e);
}

// Stage 3 for the pair of grid pixels (2k, 2k + 1), which share one Philox call and one
// Box-Muller transform (rng.hpp): the CUDA driver's unit of work.
constexpr int kNPixelPairs = (grid::kNPix + 1) / 2;

// Noise correlated between neighbours, as resampling makes it: pixel p's normal mixed with pixel
// p + 1's, (z_p + ρ z_{p+1}) / √(1 + ρ²), still of unit variance.
MGFAST_HD float correlate(float z, float z_next, float rho) {
  const double r = rho;
  return static_cast<float>((static_cast<double>(z) + r * static_cast<double>(z_next)) /
                            sqrt(1.0 + r * r));
}

MGFAST_HD void stage_pixel_pair(const Config& cfg, std::uint64_t index, const Sightline& sl,
                                const float* trans, int k, float* flux, float* err) {
  float z[3] = {0.0f, 0.0f, 0.0f};
  if (cfg.noise) {
    rng::normal_pair(cfg.seed, index, kStreamNoise, k, &z[0], &z[1]);
    if (sl.rho > 0.0f) {
      float unused = 0.0f;
      if (k + 1 < kNPixelPairs)
        rng::normal_pair(cfg.seed, index, kStreamNoise, k + 1, &z[2], &unused);
      z[0] = correlate(z[0], z[1], sl.rho);
      z[1] = correlate(z[1], z[2], sl.rho);
    }
  }
  for (int h = 0; h < 2; ++h)
    if (2 * k + h < grid::kNPix) stage_pixel(cfg, sl, trans, 2 * k + h, z[h], flux, err);
}

}  // namespace mgfast::sim
