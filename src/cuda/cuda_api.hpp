// Host-callable entry points of the CUDA build (compiled only when MGFAST_HAVE_CUDA is defined).
#pragma once

#include <string>

#include "pipeline.hpp"

namespace mgfast::cuda {

// Number of usable CUDA devices; 0 when there is no driver or no device (never throws).
int device_count();
// Name of device `device`; throws std::runtime_error when it does not exist.
std::string device_name(int device);

// The whole preprocessing pipeline on GPU `device`, from and to host memory (the batch and the
// outputs are host pointers, laid out as for preprocess_cpu). Same stages, same numbers.
void preprocess(const pipeline::Batch& host_batch, const pipeline::Options& o,
                pipeline::Output& host_out, int device);

}  // namespace mgfast::cuda
