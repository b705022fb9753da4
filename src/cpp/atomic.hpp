// Atomic data of the MgII λλ2796,2803 doublet (vacuum; Morton 2003, ApJS 149, 205): defined once.
#pragma once

namespace mgfast::atomic {

struct Line {
  const char* name;
  double lambda;  // rest wavelength, vacuum Å
  double f;       // oscillator strength
  double gamma;   // damping constant, s^-1
};

constexpr Line kMgII2796 = {"MgII 2796", 2796.3543, 0.6155, 2.625e8};
constexpr Line kMgII2803 = {"MgII 2803", 2803.5315, 0.3058, 2.595e8};

}  // namespace mgfast::atomic
