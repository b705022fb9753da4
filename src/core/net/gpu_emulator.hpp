// The GPU inference engine run on the CPU: the same plan (gpu_plan.hpp), layouts and element
// arithmetic, fp32, with plain loops in place of cuDNN's convolution and cuBLAS's GEMM (called
// with the same arguments the engine gives them). For tests on machines without a GPU: it checks
// the plan's padding, strides, weight order, flatten order and decoding against the CPU engine.
#pragma once

#include <cstdint>
#include <vector>

#include "network.hpp"

namespace mgfast::gpu {

// n spectra x (n, n_in) through the network: n × 2 (probability, λ2796) or n × the map's size;
// a branched network's summary (n × 2) into *summary when given. ivar (n, n_in): what a
// multi-channel network's input step reads beside the flux (null: no errors known).
std::vector<float> emulate(const net::Network& net, const float* x, std::int64_t n,
                           std::vector<float>* summary = nullptr, const float* ivar = nullptr);

}  // namespace mgfast::gpu
