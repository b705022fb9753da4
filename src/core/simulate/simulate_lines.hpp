// The simulator's sightline: instrument, absorbers, interlopers, forest and DLA lines, and their
// rendering through the LSF onto the grid: see simulate.hpp.
#pragma once

#include "simulate_absorbers.hpp"

namespace mgfast::sim {

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

}  // namespace mgfast::sim
