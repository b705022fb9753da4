// Rest equivalent widths of an MgII doublet measured on normalised spectra on the grid: boxcar
// windows around each line, a local continuum level from side bands, σ from the inverse variance.
// mgfast.ew (Python) documents the method and combines the result with the network's.
#pragma once

#include <cstdint>

namespace mgfast {

struct EwOptions {
  double half_factor = 1.0;   // window half-width h = clip(half_factor * EW guess, ...) rest Å
  double half_min = 2.0;      // ... at least this
  double half_max = 3.5;      // ... at most this
  double side = 6.0;          // side bands beyond both windows, rest Å wide
  double min_coverage = 0.7;  // usable fraction of a window's expected pixels to measure it
  double floor = 0.01;        // σ floor, a fraction of the EW
};

// Throws std::invalid_argument for options the method cannot use.
void validate(const EwOptions& o);

// For absorber i (in spectrum[i] of flux/ivar, n_spec x n_pix with n_pix the grid's, at
// redshift z[i], with a first EW2796 guess[i] that sets the window; NaN: the smallest window):
// ew[2i], ew[2i+1] the rest EWs of λ2796 and λ2803 (Å) and sigma[] their σ; NaN where a window
// is not measurable (off the arms, too many masked pixels, no side band, an invalid row or z).
void measure_ew_cpu(const float* flux, const float* ivar, std::int64_t n_spec, int n_pix,
                    const std::int64_t* spectrum, const double* z, const double* guess,
                    std::int64_t n_abs, const EwOptions& o, double* ew, double* sigma, int threads);

}  // namespace mgfast
