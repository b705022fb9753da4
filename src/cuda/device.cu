// CUDA device discovery; safe to call on a machine without a driver or a GPU.
#include <stdexcept>
#include <string>

#include "cuda_api.hpp"
#include "cuda_check.hpp"

namespace mgfast::cuda {

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky error so later calls start clean
    return 0;
  }
  return n;
}

void require_device(int device) {
  const int n = device_count();
  if (device < 0 || device >= n)
    throw std::runtime_error("cuda:" + std::to_string(device) + " does not exist (" +
                             std::to_string(n) + " CUDA device(s) visible)");
}

std::string device_name(int device) {
  require_device(device);
  cudaDeviceProp prop{};
  MGFAST_CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
  return prop.name;
}

}  // namespace mgfast::cuda
