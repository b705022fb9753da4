// Atomic data of the absorption lines mgfast uses (vacuum wavelengths, oscillator strengths and
// damping constants from Morton 2003, ApJS 149, 205): defined once, for CPU and CUDA.
#pragma once

#include "hd.hpp"

namespace mgfast::atomic {

struct Line {
  const char* name;
  double lambda;  // rest wavelength, vacuum Å
  double f;       // oscillator strength
  double gamma;   // damping constant, s^-1
};

constexpr Line kMgII2796 = {"MgII 2796", 2796.3543, 0.6155, 2.625e8};
constexpr Line kMgII2803 = {"MgII 2803", 2803.5315, 0.3058, 2.595e8};

// Transitions by index, for code (device code included) that iterates over them. The order is
// part of the simulator's truth format: append only.
enum Transition : int {
  kMgIIa = 0,  // MgII 2796
  kMgIIb,      // MgII 2803
  kMgI2852,
  kFeII2600,
  kFeII2586,
  kFeII2382,
  kFeII2374,
  kFeII2344,
  kCIVa,    // CIV 1548
  kCIVb,    // CIV 1550
  kSiIVa,   // SiIV 1393
  kSiIVb,   // SiIV 1402
  kAlIIIa,  // AlIII 1854
  kAlIIIb,  // AlIII 1862
  kHILya,
  // Impostors of the sky mode (docs/simulator.md): doublets at other redshifts and a DLA's metals.
  kNaIa,   // NaI 5891 (D2)
  kNaIb,   // NaI 5897 (D1)
  kCaIIK,  // CaII 3934
  kCaIIH,  // CaII 3969
  kSiII1260,
  kOI1302,
  kSiII1304,
  kCII1334,
  kSiII1526,
  kFeII1608,
  kAlII1670,
  kNumTransitions
};

// Rest wavelength (Å), oscillator strength and damping constant (s^-1) of a transition. A switch
// rather than an array, so that device code can index it at run time.
MGFAST_HD void transition(int t, double* lambda, double* f, double* gamma) {
  switch (t) {
    case kMgIIa:
      *lambda = 2796.3543;
      *f = 0.6155;
      *gamma = 2.625e8;
      break;
    case kMgIIb:
      *lambda = 2803.5315;
      *f = 0.3058;
      *gamma = 2.595e8;
      break;
    case kMgI2852:
      *lambda = 2852.9631;
      *f = 1.83;
      *gamma = 4.91e8;
      break;
    case kFeII2600:
      *lambda = 2600.1729;
      *f = 0.2394;
      *gamma = 2.70e8;
      break;
    case kFeII2586:
      *lambda = 2586.6500;
      *f = 0.0691;
      *gamma = 2.72e8;
      break;
    case kFeII2382:
      *lambda = 2382.7652;
      *f = 0.3200;
      *gamma = 3.13e8;
      break;
    case kFeII2374:
      *lambda = 2374.4612;
      *f = 0.0313;
      *gamma = 3.09e8;
      break;
    case kFeII2344:
      *lambda = 2344.2139;
      *f = 0.1142;
      *gamma = 2.68e8;
      break;
    case kCIVa:
      *lambda = 1548.2040;
      *f = 0.1899;
      *gamma = 2.642e8;
      break;
    case kCIVb:
      *lambda = 1550.7810;
      *f = 0.09475;
      *gamma = 2.628e8;
      break;
    case kSiIVa:
      *lambda = 1393.7602;
      *f = 0.5130;
      *gamma = 8.80e8;
      break;
    case kSiIVb:
      *lambda = 1402.7729;
      *f = 0.2550;
      *gamma = 8.63e8;
      break;
    case kAlIIIa:
      *lambda = 1854.7184;
      *f = 0.5590;
      *gamma = 5.42e8;
      break;
    case kAlIIIb:
      *lambda = 1862.7910;
      *f = 0.2780;
      *gamma = 5.33e8;
      break;
    case kNaIa:
      *lambda = 5891.5833;
      *f = 0.6408;
      *gamma = 6.16e7;
      break;
    case kNaIb:
      *lambda = 5897.5581;
      *f = 0.3201;
      *gamma = 6.14e7;
      break;
    case kCaIIK:
      *lambda = 3934.7750;
      *f = 0.6267;
      *gamma = 1.444e8;
      break;
    case kCaIIH:
      *lambda = 3969.5901;
      *f = 0.3116;
      *gamma = 1.409e8;
      break;
    case kSiII1260:
      *lambda = 1260.4221;
      *f = 1.18;
      *gamma = 2.95e9;
      break;
    case kOI1302:
      *lambda = 1302.1685;
      *f = 0.0480;
      *gamma = 5.65e8;
      break;
    case kSiII1304:
      *lambda = 1304.3702;
      *f = 0.0928;
      *gamma = 1.01e9;
      break;
    case kCII1334:
      *lambda = 1334.5323;
      *f = 0.1278;
      *gamma = 2.88e8;
      break;
    case kSiII1526:
      *lambda = 1526.7070;
      *f = 0.133;
      *gamma = 1.13e9;
      break;
    case kFeII1608:
      *lambda = 1608.4508;
      *f = 0.0577;
      *gamma = 2.74e8;
      break;
    case kAlII1670:
      *lambda = 1670.7886;
      *f = 1.74;
      *gamma = 1.39e9;
      break;
    default:
      *lambda = 1215.6701;
      *f = 0.4164;
      *gamma = 6.265e8;
      break;  // HI Lyα
  }
}

}  // namespace mgfast::atomic
