// The simulator's types and constants (Config, System, Sightline, Line) and the small helpers its
// stages share: see simulate.hpp.
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

}  // namespace mgfast::sim
