// The preprocessing stages and the per-spectrum SNR as work queued on a caller's stream, on device
// memory the caller owns: the building block of cuda::preprocess (host memory in and out, in
// chunks) and of the GPU engine's detection on spectra already on the device (no host copy).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "pipeline.hpp"

namespace mgfast::cuda {

// Device scratch of the stages for the spectra of one call (n_spec rows of n_in input pixels,
// kNPix output pixels): good and var (n_spec * n_in), work (n_spec * 2 * kNPix), cont
// (n_spec * kNPix; used when the output has no continuum of its own), arm_flags
// (n_spec * kNumArms).
struct PreprocessScratch {
  std::uint8_t* good = nullptr;
  double* var = nullptr;
  std::uint8_t* work = nullptr;
  float* cont = nullptr;
  std::uint32_t* arm_flags = nullptr;
};

// Queues every stage for the batch db (device pointers; row indices start at 0) on `stream`, into
// out (device pointers). edge / lnedge: the input pixel edges (off the grid; lnedge only where
// some spectrum is degraded), one row per spectrum when per_wave, else one shared row. Neither
// copies nor waits.
void enqueue_preprocess(const pipeline::Batch& db, const pipeline::Options& o, const double* edge,
                        const double* lnedge, bool per_wave, const PreprocessScratch& scratch,
                        const pipeline::Output& out, cudaStream_t stream);

// Queues snr[s] = the median of sqrt(ivar) over the pixels of row s with ivar > 0, NaN where there
// are none (numpy's nanmedian of the same, mgfast.detector._median_snr), for n_spec rows of
// kNPix on `stream`.
void enqueue_median_snr(const float* ivar, int n_spec, float* snr, cudaStream_t stream);

}  // namespace mgfast::cuda
