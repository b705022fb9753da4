// Marks functions compiled for both the CPU and CUDA paths, so both give the same numbers.
#pragma once

#if defined(__CUDACC__)
#define MGFAST_HD __host__ __device__ inline
#else
#define MGFAST_HD inline
#endif

#include <cmath>

namespace mgfast {

// isfinite that works in host and device code (host <cmath> only has std::isfinite).
MGFAST_HD bool is_finite(double x) {
#if defined(__CUDA_ARCH__)
  return isfinite(x);
#else
  return std::isfinite(x);
#endif
}

}  // namespace mgfast
