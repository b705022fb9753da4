// Batched preprocessing on the CPU: any spectra in, the 4MOST grid out (see pipeline.hpp).
#pragma once

#include <cstdint>

#include "pipeline.hpp"

namespace mgfast {

// Checks a batch for what the stages assume (sizes, increasing wavelengths, positive R); throws
// std::invalid_argument naming the problem.
void validate_batch(const pipeline::Batch& b);

// Runs the whole pipeline on the CPU with `threads` threads (0: all). Outputs must be allocated
// (n_spec x kNPix, etc.; continuum may be null).
// snr[s] = the median of sqrt(ivar) over the pixels of row s (n_pix of them) with ivar > 0, the
// mean of the middle two for an even count (float32), NaN where there are none: numpy's
// nanmedian of the same, and cuda::enqueue_median_snr's result on a GPU.
void median_snr_cpu(const float* ivar, std::int64_t n_spec, int n_pix, float* snr, int threads);

void preprocess_cpu(const pipeline::Batch& b, const pipeline::Options& o, pipeline::Output& out,
                    int threads);

// Degrades spectra on their own grid from resolving power r_in[s] to r_out (Gaussian LSF) without
// rebinning; bad pixels are left out and come back flagged in good_out. err may be null.
void lsf_degrade_cpu(int n_spec, int n_in, const double* wave, bool wave_per_spectrum,
                     const float* flux, const float* err, const double* r_in, double r_out,
                     float* flux_out, float* err_out, std::uint8_t* good_out, int threads);

}  // namespace mgfast
