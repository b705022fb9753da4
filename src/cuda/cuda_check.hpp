// Every CUDA runtime call is checked: a failure throws std::runtime_error naming the call, the
// file and line, and CUDA's own error string.
#pragma once

#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#define MGFAST_CUDA_CHECK(call)                                                                    \
  do {                                                                                             \
    const cudaError_t mgfast_err_ = (call);                                                        \
    if (mgfast_err_ != cudaSuccess)                                                                \
      throw std::runtime_error(std::string("CUDA error in ") + #call + " at " + __FILE__ + ":" +   \
                               std::to_string(__LINE__) + ": " + cudaGetErrorString(mgfast_err_)); \
  } while (0)
