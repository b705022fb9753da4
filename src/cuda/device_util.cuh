// Device-side building blocks shared by the CUDA drivers: RAII owners of device memory, the
// current device and a stream; grid-stride loops and checked launches; checked async copies.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstddef>

#include "cuda_check.hpp"

namespace mgfast::cuda {

// Grid-stride loops cover any size, so the grid need not grow with the work.
constexpr long long kMaxBlocks = 1LL << 20;
// Threads per block for per-pixel kernels, and for kernels with one long sequential thread per
// spectrum (or arm): small blocks spread those few threads over all SMs.
constexpr int kBlock = 256;
constexpr int kSmallBlock = 32;
// Device memory one chunk of a batch may use (less when the device has less free).
constexpr std::size_t kScratchBudget = std::size_t{1} << 30;

// Owns one device allocation, so that every exit path (exceptions included) frees it.
template <typename T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  ~DeviceBuffer() { release(); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  // Movable, so that containers of them can grow; the moved-from buffer owns nothing.
  DeviceBuffer(DeviceBuffer&& o) noexcept : ptr_(o.ptr_), size_(o.size_) {
    o.ptr_ = nullptr;
    o.size_ = 0;
  }
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    if (this != &o) {
      release();
      ptr_ = o.ptr_;
      size_ = o.size_;
      o.ptr_ = nullptr;
      o.size_ = 0;
    }
    return *this;
  }

  void allocate(std::size_t n) {
    release();
    if (n > 0) MGFAST_CUDA_CHECK(cudaMalloc(&ptr_, n * sizeof(T)));
    size_ = n;
  }
  T* get() const { return ptr_; }
  std::size_t size() const { return size_; }  // elements

 private:
  void release() {
    if (ptr_ != nullptr) cudaFree(ptr_);  // nothing useful to do with an error while unwinding
    ptr_ = nullptr;
    size_ = 0;
  }
  T* ptr_ = nullptr;
  std::size_t size_ = 0;
};

// Makes `device` current and restores the caller's device afterwards, so that calling us does not
// change which GPU the rest of the process talks to.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device) {
    MGFAST_CUDA_CHECK(cudaGetDevice(&previous_));
    MGFAST_CUDA_CHECK(cudaSetDevice(device));
  }
  ~DeviceGuard() { cudaSetDevice(previous_); }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = 0;
};

class Stream {
 public:
  Stream() { MGFAST_CUDA_CHECK(cudaStreamCreate(&stream_)); }
  ~Stream() { cudaStreamDestroy(stream_); }
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  cudaStream_t get() const { return stream_; }

 private:
  cudaStream_t stream_ = nullptr;
};

// Spectra per chunk: as many as fit in half the device's free memory (the other half left for
// kernels' local memory and other users), at most `limit` bytes, given `per_spec` bytes per
// spectrum and `fixed` bytes shared by all chunks; at least 1, at most n_spec.
inline int chunk_size(std::size_t per_spec, std::size_t fixed, int n_spec,
                      std::size_t limit = kScratchBudget) {
  std::size_t free_bytes = 0, total_bytes = 0;
  MGFAST_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
  const std::size_t budget = std::min(limit, free_bytes / 2);
  const std::size_t fit = budget > fixed ? (budget - fixed) / per_spec : 0;
  return static_cast<int>(std::clamp<std::size_t>(fit, 1, static_cast<std::size_t>(n_spec)));
}

inline int blocks_for(long long n, int block) {
  return static_cast<int>(std::min((n + block - 1) / block, kMaxBlocks));
}

#define MGFAST_GRID_STRIDE(i, n)                                                             \
  for (long long i = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x; i < (n); \
       i += static_cast<long long>(blockDim.x) * gridDim.x)

// Launches on `stream` and checks the launch itself; execution errors surface at the next
// synchronising call, which is checked too.
#define MGFAST_LAUNCH(kernel, n, block, stream, ...)                                 \
  do {                                                                               \
    const long long mgfast_n_ = (n);                                                 \
    if (mgfast_n_ > 0) {                                                             \
      kernel<<<blocks_for(mgfast_n_, (block)), (block), 0, (stream)>>>(__VA_ARGS__); \
      MGFAST_CUDA_CHECK(cudaGetLastError());                                         \
    }                                                                                \
  } while (0)

template <typename T>
inline void upload(T* dst, const T* src, std::size_t n, cudaStream_t stream) {
  MGFAST_CUDA_CHECK(cudaMemcpyAsync(dst, src, n * sizeof(T), cudaMemcpyHostToDevice, stream));
}

template <typename T>
inline void download(T* dst, const T* src, std::size_t n, cudaStream_t stream) {
  MGFAST_CUDA_CHECK(cudaMemcpyAsync(dst, src, n * sizeof(T), cudaMemcpyDeviceToHost, stream));
}

}  // namespace mgfast::cuda
