// Host-callable entry points of the CUDA build (compiled only when MGFAST_HAVE_CUDA is defined).
#pragma once

#include <cstdint>
#include <string>

#include "matched_filter.hpp"
#include "pipeline.hpp"
#include "simulate.hpp"

namespace mgfast::cuda {

// Number of usable CUDA devices; 0 when there is no driver or no device (never throws).
int device_count();
// Throws std::runtime_error, naming how many devices there are, unless cuda:device exists.
void require_device(int device);
// Name of device `device`; throws std::runtime_error when it does not exist.
std::string device_name(int device);

// The whole preprocessing pipeline on GPU `device`, from and to host memory (the batch and the
// outputs are host pointers, laid out as for preprocess_cpu). Same stages, same numbers.
void preprocess(const pipeline::Batch& host_batch, const pipeline::Options& o,
                pipeline::Output& host_out, int device);

// The doublet matched filter on GPU `device`, from and to host memory (laid out as for
// matched_filter::run_cpu; the filter comes from matched_filter::make_filter). Same numbers.
void matched_filter(const matched_filter::Batch& host_batch, const matched_filter::Filter& f,
                    const matched_filter::Output& host_out, int device);

// The simulator on GPU `device`: spectra start .. start + n - 1, outputs in host memory laid out
// as for simulate_cpu (clean may be null). Same stages, same random numbers.
void simulate(const sim::Config& cfg, std::uint64_t start, int n, float* flux, float* err,
              float* clean, sim::Sightline* truth, int device);

}  // namespace mgfast::cuda
