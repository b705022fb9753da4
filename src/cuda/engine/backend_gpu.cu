// The GPU inference backend (backend_gpu.hpp). Layout: activations channels-last, (batch,
// length, channels), in T = float or __half. Each layer's producer writes its output already
// padded with the zeros the next convolution needs, so every convolution runs unpadded:
//   - a convolution with one input channel (the first: 0.4 % of the paper network's flops but
//     half of its activations) is a direct kernel of its own with bias and ReLU fused;
//   - other convolutions are cuDNN's (NHWC, cross-correlation, fp32 accumulation; tensor cores
//     at fp16, plain FMA at fp32 so that no TF32 rounding creeps in), then one kernel adds the
//     bias, applies the ReLU and writes the padded layout;
//   - average pooling is a kernel (it writes the next convolution's padding, which cuDNN's
//     pooling could not);
//   - dense layers and the heads are cuBLAS GEMMs (fp32 output) with a bias/activation kernel;
//   - mgfast_fcn's heatmap head is one block per spectrum.
// Batches go through a ring of slots (pinned host buffers, device buffers, a stream, cuDNN and
// cuBLAS handles bound to it, and a CUDA graph of copy-in + network + copy-out).
#include <cublas_v2.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "backend_gpu.hpp"
#include "cuda_api.hpp"
#include "cuda_check.hpp"
#include "device_util.cuh"
#include "gpu_plan.hpp"
#include "grid.hpp"
#include "preprocess_device.cuh"

#define MGFAST_CUDNN_CHECK(call)                                               \
  do {                                                                         \
    const cudnnStatus_t mgfast_st_ = (call);                                   \
    if (mgfast_st_ != CUDNN_STATUS_SUCCESS)                                    \
      throw std::runtime_error(std::string("cuDNN error in ") + #call + ": " + \
                               cudnnGetErrorString(mgfast_st_));               \
  } while (0)

#define MGFAST_CUBLAS_CHECK(call)                                                      \
  do {                                                                                 \
    const cublasStatus_t mgfast_st_ = (call);                                          \
    if (mgfast_st_ != CUBLAS_STATUS_SUCCESS)                                           \
      throw std::runtime_error(std::string("cuBLAS error in ") + #call + ": status " + \
                               std::to_string(static_cast<int>(mgfast_st_)));          \
  } while (0)

namespace mgfast {

namespace {

using cuda::blocks_for;
using cuda::DeviceBuffer;
using cuda::kBlock;

constexpr std::size_t kWorkspaceBytes = std::size_t{256} << 20;  // cuDNN's, per slot

int blocks(long long n) { return blocks_for(n, kBlock); }

__device__ __forceinline__ void store(float* p, float v) { *p = v; }
__device__ __forceinline__ void store(__half* p, float v) { *p = __float2half_rn(v); }

// The kernels: one thread per output element, the arithmetic from gpu_plan.hpp (which the host
// emulation, gpu_emulator.cpp, runs too).
template <typename T>
__global__ void input_kernel(const float* x, const float* ivar, long long rows, int n_in,
                             features::Channels ch, bool affine, float a, float b, int pl, int pr,
                             T* dst) {
  MGFAST_GRID_STRIDE(i, rows * (pl + n_in + pr) * ch.count) {
    store(dst + i, gpu::input_at(i, x, ivar, n_in, ch, affine, a, b, pl, pr));
  }
}

template <typename T>
__global__ void conv_one_channel_kernel(const T* src, long long rows, int lp_in, const float* w,
                                        const float* bias, int k, int stride, int dilation,
                                        int pool, int l_out, int c_out, bool relu, int pl, int pr,
                                        T* dst) {
  MGFAST_GRID_STRIDE(i, rows * (pl + l_out + pr) * c_out) {
    store(dst + i, gpu::conv_one_at(i, src, lp_in, w, bias, k, stride, dilation, pool, l_out, c_out,
                                    relu, pl, pr));
  }
}

template <typename Tin, typename Tout>
__global__ void epilogue_kernel(const Tin* src, long long rows, int len, int c, const float* bias,
                                bool relu, int pl, int pr, Tout* dst) {
  MGFAST_GRID_STRIDE(i, rows * (pl + len + pr) * c) {
    store(dst + i, gpu::epilogue_at(i, src, len, c, bias, relu, pl, pr));
  }
}

template <typename T>
__global__ void avgpool_kernel(const T* src, long long rows, int len, int c, int k, int pl, int pr,
                               T* dst) {
  MGFAST_GRID_STRIDE(i, rows * (pl + len / k + pr) * c) {
    store(dst + i, gpu::avgpool_at(i, src, len, c, k, pl, pr));
  }
}

__global__ void fill_kernel(float* p, long long n, float v) { MGFAST_GRID_STRIDE(i, n) p[i] = v; }

template <typename T>
__global__ void dense_bias_kernel(const float* y, long long rows, int f, const float* bias,
                                  bool relu, T* dst) {
  MGFAST_GRID_STRIDE(i, rows * f) { store(dst + i, gpu::dense_bias_at(i, y, f, bias, relu)); }
}

__global__ void heads_kernel(const float* y, long long rows, const float* bias, float* out) {
  MGFAST_GRID_STRIDE(r, rows) { gpu::heads_at(r, y, bias, out); }
}

// mgfast_fcn's heatmap head, one block per spectrum on features (len, c): the positions' logits
// and the channels' max and mean in parallel, the softmax denominator by a block reduction.
template <typename T>
__global__ void heatmap_kernel(const T* f, long long rows, int len, int c, const float* w,
                               const float* b, int cell, float* out) {
  extern __shared__ float logit[];  // len values, then c maxima and c means
  float* mx = logit + len;
  float* mean = mx + c;
  __shared__ float none_logit;
  __shared__ int best;
  __shared__ float warp_sums[32];
  for (long long r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* fr = f + r * len * static_cast<long long>(c);
    for (int l = threadIdx.x; l < len; l += blockDim.x)
      logit[l] = gpu::heatmap_logit(fr + static_cast<long long>(l) * c, c, w, b);
    for (int k = threadIdx.x; k < c; k += blockDim.x) {
      float m = -INFINITY, sum = 0.0f;
      for (int l = 0; l < len; ++l) {
        const float v = gpu::to_float(fr[static_cast<long long>(l) * c + k]);
        m = fmaxf(m, v);
        sum += v;
      }
      mx[k] = m;
      mean[k] = sum / len;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      float none = b[2];
      for (int k = 0; k < c; ++k) none += w[2 * c + k] * mx[k] + w[3 * c + k] * mean[k];
      int arg = 0;
      for (int l = 1; l < len; ++l)
        if (logit[l] > logit[arg]) arg = l;
      none_logit = none;
      best = arg;
    }
    __syncthreads();
    const float m = fmaxf(logit[best], none_logit);
    float part = 0.0f;
    for (int l = threadIdx.x; l < len; l += blockDim.x) part += expf(logit[l] - m);
    for (int o = 16; o > 0; o >>= 1) part += __shfl_down_sync(0xffffffffu, part, o);
    if ((threadIdx.x & 31) == 0) warp_sums[threadIdx.x >> 5] = part;
    __syncthreads();
    if (threadIdx.x == 0) {
      float denom = expf(none_logit - m);
      for (int i = 0; i < static_cast<int>((blockDim.x + 31) / 32); ++i) denom += warp_sums[i];
      gpu::heatmap_decode_best(fr + static_cast<long long>(best) * c, c, w, b, cell, best,
                               none_logit, m, denom, out + 2 * r);
    }
    __syncthreads();
  }
}

using gpu::Op;

// A step of the plan and, for a cuDNN convolution, its descriptors and chosen algorithm.
struct Step : gpu::PlanStep {
  cudnnTensorDescriptor_t x_desc = nullptr, y_desc = nullptr;
  cudnnFilterDescriptor_t w_desc = nullptr;
  cudnnConvolutionDescriptor_t conv_desc = nullptr;
  cudnnConvolutionFwdAlgo_t algo = CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM;
  std::size_t workspace = 0;
};

struct Slot {
  cudaStream_t stream = nullptr;
  cudnnHandle_t dnn = nullptr;
  cublasHandle_t blas = nullptr;
  float* host_in = nullptr;                 // pinned
  float* host_out = nullptr;                // pinned
  float* host_ivar = nullptr;               // pinned; a multi-channel network's only
  DeviceBuffer<float> in, out, gemm, ivar;  // ivar: a multi-channel network's only
  DeviceBuffer<unsigned char> act[2], workspace, blas_workspace;
  cudaGraphExec_t graph = nullptr;
  cudaEvent_t done = nullptr;
  // The batch in flight: where its results go.
  bool busy = false;
  std::int64_t first = 0;
  std::int64_t count = 0;
};

}  // namespace

namespace {

// Device memory of detect_device: the preprocessing outputs other than the flux (which goes
// straight into a slot's network input) and its scratch, for one batch.
struct DetectBuffers {
  DeviceBuffer<float> ivar, cont, snr;
  DeviceBuffer<std::uint8_t> pixmask, good, work;
  DeviceBuffer<double> var;
  DeviceBuffer<std::uint32_t> flags, arm_flags;
  DeviceBuffer<std::int32_t> n_masked;

  bool allocated = false;

  // All or nothing: a failed cudaMalloc (out of memory) frees what was allocated and leaves the
  // buffers unallocated, so that the next call tries again rather than using null pointers.
  void allocate(std::size_t b) {
    const std::size_t px = b * grid::kNPix;
    try {
      ivar.allocate(px);
      cont.allocate(px);
      snr.allocate(b);
      pixmask.allocate(px);
      good.allocate(px);
      work.allocate(2 * px);
      var.allocate(px);
      flags.allocate(b);
      arm_flags.allocate(b * grid::kNumArms);
      n_masked.allocate(b * grid::kNumArms);
    } catch (...) {
      *this = DetectBuffers{};
      throw;
    }
    allocated = true;
  }
};

// Throws std::invalid_argument unless p is memory on `device` (what names it in the message).
void require_on_device(const void* p, int device, const std::string& what) {
  cudaPointerAttributes attr{};
  MGFAST_CUDA_CHECK(cudaPointerGetAttributes(&attr, p));
  if (attr.type != cudaMemoryTypeDevice && attr.type != cudaMemoryTypeManaged)
    throw std::invalid_argument(what + ": not device memory");
  if (attr.device != device)
    throw std::invalid_argument(what + ": lives on cuda:" + std::to_string(attr.device) +
                                ", this backend on cuda:" + std::to_string(device));
}

// Makes `stream` wait for the work already queued on each producer stream of the arrays it is
// about to read or write (ProducerStreams: their __cuda_array_interface__ "stream").
void after_producers(cudaStream_t stream, const ProducerStreams& producers) {
  for (const std::uintptr_t p : producers) {
    if (p == kNoProducerStream) continue;
    const cudaStream_t from = p == 1   ? cudaStreamLegacy
                              : p == 2 ? cudaStreamPerThread
                                       : reinterpret_cast<cudaStream_t>(p);
    cudaEvent_t ready = nullptr;
    MGFAST_CUDA_CHECK(cudaEventCreateWithFlags(&ready, cudaEventDisableTiming));
    MGFAST_CUDA_CHECK(cudaEventRecord(ready, from));
    MGFAST_CUDA_CHECK(cudaStreamWaitEvent(stream, ready, 0));
    cudaEventDestroy(ready);
  }
}

}  // namespace

struct GpuBackend::Impl {
  net::Network net;
  std::vector<net::Shape> shapes;
  int device = 0;
  int batch = 0;
  bool half = false;
  bool use_graphs = true;
  std::string graph_status = "graphs";
  gpu::Plan plan;           // the steps, sizes and the folded input map (gpu_plan.hpp)
  std::vector<Step> steps;  // plan.steps with their cuDNN descriptors
  std::vector<Slot> slots;
  // Weights on the device: per layer, in T for cuDNN and cuBLAS, in fp32 for the kernels.
  std::vector<DeviceBuffer<unsigned char>> w_t;
  std::vector<DeviceBuffer<float>> w_f, bias;
  DetectBuffers detect;  // allocated by the first detect_device
  std::mutex mu;

  std::size_t elem() const { return half ? sizeof(__half) : sizeof(float); }
  // Output floats of one batch: the maps (or the pairs) of all its spectra, then, for a branched
  // network, their summaries.
  std::size_t out_floats() const {
    return std::size_t(batch) * (plan.out_per_spectrum + (plan.has_summary ? 2 : 0));
  }
  std::size_t act_bytes() const { return plan.act_elems * std::size_t(batch) * elem(); }
  cudnnDataType_t dnn_type() const { return half ? CUDNN_DATA_HALF : CUDNN_DATA_FLOAT; }
  cudaDataType_t blas_type() const { return half ? CUDA_R_16F : CUDA_R_32F; }

  void build();
  void make_slot(Slot& s);
  void choose_algorithms(Slot& s);
  void capture(Slot& s);
  // A multi-channel network's input step reads the inverse variances beside the flux.
  bool reads_ivar() const { return !net.flux_only(); }
  void enqueue_network(Slot& s, const float* d_in, const float* d_ivar, float* d_out);
  template <typename T>
  void enqueue_typed(Slot& s, const float* d_in, const float* d_ivar, float* d_out);
  // The slot's copy-in (flux, and ivar when the network reads it) from its pinned buffers.
  void copy_in(Slot& s);
  void run_slot(Slot& s);
  // Fills the rows count .. batch - 1 of the slot's device input with continuum (1), so that a
  // last partial batch runs padded.
  void pad_device_input(Slot& s, std::int64_t count);
  void finish(Slot& s, float* out, bool split, float* lam);
  void run_host(const float* x, const float* ivar, std::int64_t n, float* out, bool split,
                float* lam);
  ~Impl();
};

void GpuBackend::Impl::build() {
  shapes = net.shapes();  // validates the chain
  plan = gpu::plan_network(net);
  for (const gpu::PlanStep& p : plan.steps) {
    Step s;
    static_cast<gpu::PlanStep&>(s) = p;
    steps.push_back(s);
  }

  // Weights: cuDNN's NHWC filters (c_out, 1, k, c_in); the rest as stored.
  const std::size_t nl = net.layers.size();
  w_t.resize(nl);
  w_f.resize(nl);
  bias.resize(nl);
  for (std::size_t i = plan.affine ? 1 : 0; i < nl; ++i) {
    const net::Layer& l = net.layers[i];
    const std::vector<float> w = gpu::filter_nhwc(l);
    if (!w.empty()) {
      w_f[i].allocate(w.size());
      MGFAST_CUDA_CHECK(
          cudaMemcpy(w_f[i].get(), w.data(), w.size() * sizeof(float), cudaMemcpyHostToDevice));
      if (half) {
        std::vector<__half> h(w.size());
        for (std::size_t j = 0; j < w.size(); ++j) h[j] = __float2half_rn(w[j]);
        w_t[i].allocate(h.size() * sizeof(__half));
        MGFAST_CUDA_CHECK(
            cudaMemcpy(w_t[i].get(), h.data(), h.size() * sizeof(__half), cudaMemcpyHostToDevice));
      } else {
        w_t[i].allocate(w.size() * sizeof(float));
        MGFAST_CUDA_CHECK(
            cudaMemcpy(w_t[i].get(), w.data(), w.size() * sizeof(float), cudaMemcpyHostToDevice));
      }
    }
    if (!l.bias.empty()) {
      bias[i].allocate(l.bias.size());
      MGFAST_CUDA_CHECK(cudaMemcpy(bias[i].get(), l.bias.data(), l.bias.size() * sizeof(float),
                                   cudaMemcpyHostToDevice));
    }
  }

  // cuDNN descriptors of the convolutions.
  for (Step& s : steps) {
    if (s.op != Op::kConvDnn) continue;
    const net::Layer& l = net.layers[s.layer];
    MGFAST_CUDNN_CHECK(cudnnCreateTensorDescriptor(&s.x_desc));
    MGFAST_CUDNN_CHECK(cudnnCreateTensorDescriptor(&s.y_desc));
    MGFAST_CUDNN_CHECK(cudnnCreateFilterDescriptor(&s.w_desc));
    MGFAST_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&s.conv_desc));
    MGFAST_CUDNN_CHECK(cudnnSetTensor4dDescriptor(s.x_desc, CUDNN_TENSOR_NHWC, dnn_type(), batch,
                                                  l.c_in, 1, s.len_in + s.in_pad));
    MGFAST_CUDNN_CHECK(cudnnSetFilter4dDescriptor(s.w_desc, dnn_type(), CUDNN_TENSOR_NHWC, l.c_out,
                                                  l.c_in, 1, l.kernel));
    MGFAST_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(
        s.conv_desc, 0, 0, 1, l.stride, 1, l.dilation, CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
    MGFAST_CUDNN_CHECK(
        cudnnSetConvolutionMathType(s.conv_desc, half ? CUDNN_TENSOR_OP_MATH : CUDNN_FMA_MATH));
    int n = 0, c = 0, h = 0, w = 0;
    MGFAST_CUDNN_CHECK(
        cudnnGetConvolution2dForwardOutputDim(s.conv_desc, s.x_desc, s.w_desc, &n, &c, &h, &w));
    if (n != batch || c != l.c_out || h != 1 || w != s.len_out)
      throw std::logic_error("cuDNN's output shape for layer " + std::to_string(s.layer) +
                             " differs from the network's: " + std::to_string(w) + " vs " +
                             std::to_string(s.len_out));
    MGFAST_CUDNN_CHECK(cudnnSetTensor4dDescriptor(s.y_desc, CUDNN_TENSOR_NHWC, dnn_type(), batch,
                                                  l.c_out, 1, s.len_out));
  }
}

void GpuBackend::Impl::make_slot(Slot& s) {
  MGFAST_CUDA_CHECK(cudaStreamCreateWithFlags(&s.stream, cudaStreamNonBlocking));
  MGFAST_CUDA_CHECK(cudaEventCreateWithFlags(&s.done, cudaEventDisableTiming));
  MGFAST_CUDNN_CHECK(cudnnCreate(&s.dnn));
  MGFAST_CUDNN_CHECK(cudnnSetStream(s.dnn, s.stream));
  MGFAST_CUBLAS_CHECK(cublasCreate(&s.blas));
  MGFAST_CUBLAS_CHECK(cublasSetStream(s.blas, s.stream));
  // A workspace of its own, so that cuBLAS never allocates (which graph capture forbids).
  s.blas_workspace.allocate(std::size_t{32} << 20);
  MGFAST_CUBLAS_CHECK(cublasSetWorkspace(s.blas, s.blas_workspace.get(), s.blas_workspace.size()));
  MGFAST_CUBLAS_CHECK(cublasSetMathMode(s.blas, CUBLAS_DEFAULT_MATH));  // no TF32 at fp32
  const std::size_t b = std::size_t(batch);
  MGFAST_CUDA_CHECK(cudaMallocHost(&s.host_in, b * net.n_in * sizeof(float)));
  MGFAST_CUDA_CHECK(cudaMallocHost(&s.host_out, out_floats() * sizeof(float)));
  s.in.allocate(b * net.n_in);
  if (reads_ivar()) {
    MGFAST_CUDA_CHECK(cudaMallocHost(&s.host_ivar, b * net.n_in * sizeof(float)));
    std::fill(s.host_ivar, s.host_ivar + b * net.n_in, 0.0f);
    s.ivar.allocate(b * net.n_in);
    MGFAST_CUDA_CHECK(cudaMemset(s.ivar.get(), 0, b * net.n_in * sizeof(float)));
  }
  s.out.allocate(out_floats());
  s.gemm.allocate(std::max<std::size_t>(b * plan.gemm_floats, 1));
  s.act[0].allocate(act_bytes());
  s.act[1].allocate(act_bytes());
}

// cuDNN's fastest algorithm per convolution, measured once on slot 0's buffers.
void GpuBackend::Impl::choose_algorithms(Slot& s) {
  std::size_t need = 0;
  for (Step& st : steps) {
    if (st.op != Op::kConvDnn) continue;
    cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
    int got = 0;
    DeviceBuffer<unsigned char> ws;
    ws.allocate(kWorkspaceBytes);
    MGFAST_CUDNN_CHECK(cudnnFindConvolutionForwardAlgorithmEx(
        s.dnn, st.x_desc, s.act[0].get(), st.w_desc, w_t[st.layer].get(), st.conv_desc, st.y_desc,
        s.act[1].get(), CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &got, perf, ws.get(), ws.size()));
    bool found = false;
    for (int i = 0; i < got && !found; ++i) {
      if (perf[i].status != CUDNN_STATUS_SUCCESS || perf[i].memory > kWorkspaceBytes) continue;
      // At fp32 keep to algorithms that do not round through TF32 or fp16, and say so: cuDNN's
      // default math type lets it use TF32 tensor cores on Ampere and newer.
      if (!half && perf[i].mathType != CUDNN_FMA_MATH && perf[i].mathType != CUDNN_DEFAULT_MATH)
        continue;
      st.algo = perf[i].algo;
      st.workspace = perf[i].memory;
      MGFAST_CUDNN_CHECK(
          cudnnSetConvolutionMathType(st.conv_desc, half ? perf[i].mathType : CUDNN_FMA_MATH));
      found = true;
    }
    if (!found)
      throw std::runtime_error("cuDNN found no algorithm for layer " + std::to_string(st.layer));
    need = std::max(need, st.workspace);
  }
  for (Slot& t : slots) t.workspace.allocate(std::max<std::size_t>(need, 1));
}

template <typename T>
void GpuBackend::Impl::enqueue_typed(Slot& s, const float* d_in, const float* d_ivar,
                                     float* d_out) {
  const long long rows = batch;
  int cur = 0;  // activation buffer holding the current step's input
  auto act = [&](int i) { return reinterpret_cast<T*>(s.act[i].get()); };
  const float one = 1.0f, zero = 0.0f;
  for (const Step& st : steps) {
    const int other = 1 - cur;
    switch (st.op) {
      case Op::kInput:
        input_kernel<T>
            <<<blocks(rows * (st.len_out + st.pl + st.pr) * st.c_out), kBlock, 0, s.stream>>>(
                d_in, reads_ivar() ? d_ivar : nullptr, rows, net.n_in, plan.input, plan.affine,
                plan.affine_a, plan.affine_b, st.pl, st.pr, act(cur));
        break;
      case Op::kConvOne: {
        const net::Layer& l = net.layers[st.layer];
        const long long n = rows * (st.len_out + st.pl + st.pr) * st.c_out;
        conv_one_channel_kernel<T><<<blocks(n), kBlock, 0, s.stream>>>(
            act(cur), rows, st.len_in + st.in_pad, w_f[st.layer].get(), bias[st.layer].get(),
            l.kernel, l.stride, l.dilation, st.pool, st.len_out, st.c_out, l.relu, st.pl, st.pr,
            act(other));
        cur = other;
        break;
      }
      case Op::kConvDnn: {
        const net::Layer& l = net.layers[st.layer];
        MGFAST_CUDNN_CHECK(cudnnConvolutionForward(
            s.dnn, &one, st.x_desc, act(cur), st.w_desc, w_t[st.layer].get(), st.conv_desc, st.algo,
            s.workspace.get(), st.workspace, &zero, st.y_desc, act(other)));
        const long long n = rows * (st.len_out + st.pl + st.pr) * st.c_out;
        if (st.last) {
          epilogue_kernel<T, float><<<blocks(rows * st.len_out * st.c_out), kBlock, 0, s.stream>>>(
              act(other), rows, st.len_out, st.c_out, bias[st.layer].get(), l.relu, 0, 0, d_out);
        } else {
          epilogue_kernel<T, T><<<blocks(n), kBlock, 0, s.stream>>>(act(other), rows, st.len_out,
                                                                    st.c_out, bias[st.layer].get(),
                                                                    l.relu, st.pl, st.pr, act(cur));
        }
        break;  // the result is back in `cur`
      }
      case Op::kPool: {
        const net::Layer& l = net.layers[st.layer];
        const long long n = rows * (st.len_out + st.pl + st.pr) * st.c_out;
        avgpool_kernel<T><<<blocks(n), kBlock, 0, s.stream>>>(act(cur), rows, st.len_in, st.c_in,
                                                              l.kernel, st.pl, st.pr, act(other));
        cur = other;
        break;
      }
      case Op::kDense:
      case Op::kHeads: {
        const net::Layer& l = net.layers[st.layer];
        // y (rows, out) = x (rows, in) Wᵀ, in cuBLAS's column-major terms y' = W' x'.
        MGFAST_CUBLAS_CHECK(cublasGemmEx(s.blas, CUBLAS_OP_T, CUBLAS_OP_N, l.c_out, batch, l.c_in,
                                         &one, w_t[st.layer].get(), blas_type(), l.c_in, act(cur),
                                         blas_type(), l.c_in, &zero, s.gemm.get(), CUDA_R_32F,
                                         l.c_out, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
        if (st.op == Op::kHeads) {
          heads_kernel<<<blocks(rows), kBlock, 0, s.stream>>>(s.gemm.get(), rows,
                                                              bias[st.layer].get(), d_out);
        } else {
          dense_bias_kernel<T><<<blocks(rows * l.c_out), kBlock, 0, s.stream>>>(
              s.gemm.get(), rows, l.c_out, bias[st.layer].get(), l.relu, act(other));
          cur = other;
        }
        break;
      }
      case Op::kHeatmap: {
        const net::Layer& l = net.layers[st.layer];
        const std::size_t shared = (std::size_t(st.len_in) + 2 * st.c_in) * sizeof(float);
        heatmap_kernel<T>
            <<<static_cast<int>(std::min<long long>(rows, 65535)), kBlock, shared, s.stream>>>(
                act(cur), rows, st.len_in, st.c_in, w_f[st.layer].get(), bias[st.layer].get(),
                l.kernel, st.summary ? d_out + rows * plan.out_per_spectrum : d_out);
        break;  // a summary leaves the features in `cur` for the branch
      }
      case Op::kPad: {
        const long long n = rows * (st.len_out + st.pl + st.pr) * st.c_out;
        epilogue_kernel<T, T><<<blocks(n), kBlock, 0, s.stream>>>(
            act(cur), rows, st.len_out, st.c_out, nullptr, false, st.pl, st.pr, act(other));
        cur = other;
        break;
      }
    }
    MGFAST_CUDA_CHECK(cudaGetLastError());
  }
}

void GpuBackend::Impl::enqueue_network(Slot& s, const float* d_in, const float* d_ivar,
                                       float* d_out) {
  if (half)
    enqueue_typed<__half>(s, d_in, d_ivar, d_out);
  else
    enqueue_typed<float>(s, d_in, d_ivar, d_out);
}

void GpuBackend::Impl::copy_in(Slot& s) {
  const std::size_t bytes = std::size_t(batch) * net.n_in * sizeof(float);
  MGFAST_CUDA_CHECK(
      cudaMemcpyAsync(s.in.get(), s.host_in, bytes, cudaMemcpyHostToDevice, s.stream));
  if (reads_ivar())
    MGFAST_CUDA_CHECK(
        cudaMemcpyAsync(s.ivar.get(), s.host_ivar, bytes, cudaMemcpyHostToDevice, s.stream));
}

void GpuBackend::Impl::pad_device_input(Slot& s, std::int64_t count) {
  const long long pad = (batch - count) * static_cast<long long>(net.n_in);
  if (pad <= 0) return;
  fill_kernel<<<blocks(pad), kBlock, 0, s.stream>>>(s.in.get() + count * net.n_in, pad, 1.0f);
  MGFAST_CUDA_CHECK(cudaGetLastError());
  if (reads_ivar()) {  // and no errors known there
    fill_kernel<<<blocks(pad), kBlock, 0, s.stream>>>(s.ivar.get() + count * net.n_in, pad, 0.0f);
    MGFAST_CUDA_CHECK(cudaGetLastError());
  }
}

// Copy-in, network, copy-out of one full batch on the slot's stream.
void GpuBackend::Impl::run_slot(Slot& s) {
  if (s.graph) {
    MGFAST_CUDA_CHECK(cudaGraphLaunch(s.graph, s.stream));
  } else {
    copy_in(s);
    enqueue_network(s, s.in.get(), s.ivar.get(), s.out.get());
    MGFAST_CUDA_CHECK(cudaMemcpyAsync(s.host_out, s.out.get(), out_floats() * sizeof(float),
                                      cudaMemcpyDeviceToHost, s.stream));
  }
  MGFAST_CUDA_CHECK(cudaEventRecord(s.done, s.stream));
}

void GpuBackend::Impl::capture(Slot& s) {
  // One plain run first: modules load lazily, which must not happen inside a capture.
  run_slot(s);
  MGFAST_CUDA_CHECK(cudaStreamSynchronize(s.stream));
  cudaGraph_t g = nullptr;
  std::string why;
  const cudaError_t begin = cudaStreamBeginCapture(s.stream, cudaStreamCaptureModeThreadLocal);
  if (begin != cudaSuccess) {
    cudaGetLastError();
    graph_status =
        std::string("plain launches (graph capture failed: ") + cudaGetErrorString(begin) + ")";
    use_graphs = false;
    return;
  }
  try {
    copy_in(s);
    enqueue_network(s, s.in.get(), s.ivar.get(), s.out.get());
    MGFAST_CUDA_CHECK(cudaMemcpyAsync(s.host_out, s.out.get(), out_floats() * sizeof(float),
                                      cudaMemcpyDeviceToHost, s.stream));
  } catch (const std::exception& e) {
    why = e.what();
  }
  const cudaError_t end = cudaStreamEndCapture(s.stream, &g);
  if (why.empty() && end != cudaSuccess) why = cudaGetErrorString(end);
  if (why.empty()) {
    const cudaError_t inst = cudaGraphInstantiate(&s.graph, g, 0);
    if (inst != cudaSuccess) {
      why = std::string("instantiation: ") + cudaGetErrorString(inst);
      s.graph = nullptr;
    }
  }
  if (g) cudaGraphDestroy(g);
  if (!why.empty()) {
    cudaGetLastError();  // clear the (non-sticky) error the failed capture left
    graph_status = "plain launches (graph capture failed: " + why + ")";
    use_graphs = false;
  }
}

// Results of a finished slot into the caller's arrays.
void GpuBackend::Impl::finish(Slot& s, float* out, bool split, float* lam) {
  MGFAST_CUDA_CHECK(cudaEventSynchronize(s.done));
  if (plan.has_summary && lam) {  // the summaries follow the batch's maps
    const float* sum = s.host_out + std::size_t(batch) * plan.out_per_spectrum;
    std::memcpy(lam + 2 * s.first, sum, std::size_t(s.count) * 2 * sizeof(float));
  }
  if (split) {
    for (std::int64_t i = 0; i < s.count; ++i) {
      out[s.first + i] = s.host_out[2 * i];
      lam[s.first + i] = s.host_out[2 * i + 1];
    }
  } else {
    std::memcpy(out + s.first * std::int64_t(plan.out_per_spectrum), s.host_out,
                std::size_t(s.count) * plan.out_per_spectrum * sizeof(float));
  }
  s.busy = false;
}

void GpuBackend::Impl::run_host(const float* x, const float* ivar, std::int64_t n, float* out,
                                bool split, float* lam) {
  const std::int64_t b = batch;
  std::size_t k = 0;
  try {
    for (std::int64_t first = 0; first < n; first += b, k = (k + 1) % slots.size()) {
      Slot& s = slots[k];
      if (s.busy) finish(s, out, split, lam);
      const std::int64_t count = std::min(b, n - first);
      std::memcpy(s.host_in, x + first * net.n_in, std::size_t(count) * net.n_in * sizeof(float));
      if (count < b)  // a last partial batch runs padded with continuum
        std::fill(s.host_in + count * net.n_in, s.host_in + b * net.n_in, 1.0f);
      if (reads_ivar()) {  // beside the flux; none given or padding: no errors known
        if (ivar)
          std::memcpy(s.host_ivar, ivar + first * net.n_in,
                      std::size_t(count) * net.n_in * sizeof(float));
        std::fill(s.host_ivar + (ivar ? count : 0) * net.n_in, s.host_ivar + b * net.n_in, 0.0f);
      }
      s.first = first;
      s.count = count;
      run_slot(s);
      s.busy = true;
    }
    // Drain in submission order.
    for (std::size_t j = 0; j < slots.size(); ++j) {
      Slot& s = slots[(k + j) % slots.size()];
      if (s.busy) finish(s, out, split, lam);
    }
  } catch (...) {
    for (Slot& s : slots) {
      cudaStreamSynchronize(s.stream);
      s.busy = false;
    }
    throw;
  }
}

GpuBackend::Impl::~Impl() {
  for (Slot& s : slots) {
    if (s.stream) cudaStreamSynchronize(s.stream);
    if (s.graph) cudaGraphExecDestroy(s.graph);
    if (s.blas) cublasDestroy(s.blas);
    if (s.dnn) cudnnDestroy(s.dnn);
    if (s.done) cudaEventDestroy(s.done);
    if (s.stream) cudaStreamDestroy(s.stream);
    if (s.host_in) cudaFreeHost(s.host_in);
    if (s.host_out) cudaFreeHost(s.host_out);
    if (s.host_ivar) cudaFreeHost(s.host_ivar);
  }
  for (Step& st : steps) {
    if (st.x_desc) cudnnDestroyTensorDescriptor(st.x_desc);
    if (st.y_desc) cudnnDestroyTensorDescriptor(st.y_desc);
    if (st.w_desc) cudnnDestroyFilterDescriptor(st.w_desc);
    if (st.conv_desc) cudnnDestroyConvolutionDescriptor(st.conv_desc);
  }
}

GpuBackend::GpuBackend(net::Network network, int device, int batch_size, bool fp16, int slots,
                       bool graphs)
    : impl_(std::make_unique<Impl>()) {
  if (batch_size < 1 || batch_size > (1 << 16))
    throw std::invalid_argument("batch_size: must lie in [1, 65536]");
  if (slots < 2 || slots > 8) throw std::invalid_argument("slots: must lie in [2, 8]");
  network.shapes();  // a network the backends cannot run is named before any device is touched
  cuda::require_device(device);
  Impl& m = *impl_;
  m.net = std::move(network);
  m.device = device;
  m.batch = batch_size;
  m.half = fp16;
  m.use_graphs = graphs;
  if (!graphs) m.graph_status = "plain launches (graphs off)";
  MGFAST_CUDA_CHECK(cudaSetDevice(device));
  m.build();
  m.slots.resize(static_cast<std::size_t>(slots));
  for (Slot& s : m.slots) m.make_slot(s);
  m.choose_algorithms(m.slots[0]);
  if (m.use_graphs)
    for (Slot& s : m.slots)
      if (m.use_graphs) m.capture(s);
  if (!m.use_graphs)
    for (Slot& s : m.slots)
      if (s.graph) {
        cudaGraphExecDestroy(s.graph);
        s.graph = nullptr;
      }
  MGFAST_CUDA_CHECK(cudaDeviceSynchronize());
}

GpuBackend::~GpuBackend() = default;

void GpuBackend::infer(const EngineBatch& in, const EngineOutput& out) {
  const bool map = impl_->net.map_output();
  if (!map && (!out.probability || !out.lambda2796))
    throw std::logic_error("this network returns probability and λ2796: give both outputs");
  if (map && !out.map) throw std::logic_error("this network returns a map: give the map output");
  if (map && out.summary && !impl_->plan.has_summary)
    throw std::logic_error("this network has no summary head");
  std::lock_guard<std::mutex> lock(impl_->mu);
  cuda::DeviceGuard guard(impl_->device);
  if (map)
    impl_->run_host(in.flux, in.ivar, in.n, out.map, false, out.summary);
  else
    impl_->run_host(in.flux, in.ivar, in.n, out.probability, true, out.lambda2796);
}

bool GpuBackend::has_summary() const { return impl_->plan.has_summary; }

void GpuBackend::infer_device(const float* x, std::int64_t n, float* out,
                              const ProducerStreams& producers) {
  Impl& m = *impl_;
  if (m.plan.has_summary)
    throw std::invalid_argument("infer_device: not for a network with a summary head (yet)");
  if (m.reads_ivar())
    throw std::invalid_argument(
        "infer_device: this network reads the noise beside the flux (input channels other than "
        "flux): use detect_device, which makes the ivar on the device, or the host arrays' infer");
  if (n <= 0) return;
  std::lock_guard<std::mutex> lock(m.mu);
  cuda::DeviceGuard guard(m.device);
  require_on_device(x, m.device, "infer_device: the input");
  require_on_device(out, m.device, "infer_device: out");
  Slot& s = m.slots[0];
  after_producers(s.stream, producers);
  const std::int64_t b = m.batch;
  for (std::int64_t first = 0; first < n; first += b) {
    const std::int64_t count = std::min(b, n - first);
    // Full batches are read in place; a last partial one through the slot's input buffer.
    const float* in = x + first * m.net.n_in;
    if (count < b) {
      MGFAST_CUDA_CHECK(cudaMemcpyAsync(s.in.get(), in,
                                        std::size_t(count) * m.net.n_in * sizeof(float),
                                        cudaMemcpyDeviceToDevice, s.stream));
      m.pad_device_input(s, count);
      in = s.in.get();
    }
    m.enqueue_network(s, in, nullptr, s.out.get());
    MGFAST_CUDA_CHECK(cudaMemcpyAsync(out + first * std::int64_t(m.plan.out_per_spectrum),
                                      s.out.get(),
                                      std::size_t(count) * m.plan.out_per_spectrum * sizeof(float),
                                      cudaMemcpyDeviceToDevice, s.stream));
  }
  MGFAST_CUDA_CHECK(cudaStreamSynchronize(s.stream));
}

void GpuBackend::detect_device(const pipeline::Batch& batch, const pipeline::Options& o,
                               const DeviceDetectOutput& out, const ProducerStreams& producers) {
  Impl& m = *impl_;
  if (!batch.on_grid || batch.n_in != grid::kNPix || batch.wave || batch.r_in)
    throw std::invalid_argument("detect_device: the spectra must be on the grid (" +
                                std::to_string(grid::kNPix) + " pixels, no wave, no resolution)");
  if (m.net.n_in != grid::kNPix)
    throw std::invalid_argument("detect_device: the network reads " + std::to_string(m.net.n_in) +
                                " pixels, not the grid's " + std::to_string(grid::kNPix));
  if (m.plan.has_summary && !out.summary)
    throw std::invalid_argument("detect_device: this network has a summary head: pass summary");
  if (m.reads_ivar() && !batch.err)
    throw std::invalid_argument(
        "detect_device: this model reads the noise beside the flux (its input channels): pass "
        "err or ivar with the flux (estimating it from the scatter is done on the host only)");
  if (batch.n_spec <= 0) return;
  std::lock_guard<std::mutex> lock(m.mu);
  cuda::DeviceGuard guard(m.device);
  require_on_device(batch.flux, m.device, "flux");
  if (batch.err) require_on_device(batch.err, m.device, batch.err_is_ivar ? "ivar" : "err");
  if (batch.mask) require_on_device(batch.mask, m.device, "mask");
  const std::int64_t b = m.batch;
  const std::size_t npix = grid::kNPix, arms = grid::kNumArms;
  DetectBuffers& d = m.detect;
  if (!d.allocated) d.allocate(std::size_t(b));
  Slot& s = m.slots[0];
  after_producers(s.stream, producers);
  cuda::PreprocessScratch scratch;
  scratch.good = d.good.get();
  scratch.var = d.var.get();
  scratch.work = d.work.get();
  scratch.cont = d.cont.get();
  scratch.arm_flags = d.arm_flags.get();
  pipeline::Output pre;
  pre.flux = s.in.get();  // the network's input
  pre.ivar = d.ivar.get();
  pre.pixmask = d.pixmask.get();
  pre.flags = d.flags.get();
  pre.n_masked = d.n_masked.get();
  const std::size_t per = m.plan.out_per_spectrum;
  auto to_host = [&](void* dst, const void* src, std::size_t bytes) {
    MGFAST_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, s.stream));
  };
  try {
    for (std::int64_t first = 0; first < batch.n_spec; first += b) {
      const std::int64_t count = std::min<std::int64_t>(b, batch.n_spec - first);
      const std::size_t c = std::size_t(count), row0 = std::size_t(first);
      pipeline::Batch db = batch;
      db.n_spec = static_cast<int>(count);
      db.flux = batch.flux + row0 * npix;
      if (batch.err) db.err = batch.err + row0 * npix;
      if (batch.mask) db.mask = batch.mask + row0 * npix;
      cuda::enqueue_preprocess(db, o, nullptr, nullptr, false, scratch, pre, s.stream);
      if (count < b) m.pad_device_input(s, count);
      cuda::enqueue_median_snr(d.ivar.get(), static_cast<int>(count), d.snr.get(), s.stream);
      if (count < b && m.reads_ivar())  // padding rows: no errors known (their outputs go unread)
        MGFAST_CUDA_CHECK(cudaMemsetAsync(d.ivar.get() + c * npix, 0,
                                          (std::size_t(b) - c) * npix * sizeof(float), s.stream));
      m.enqueue_network(s, s.in.get(), d.ivar.get(), s.out.get());
      to_host(out.out + row0 * per, s.out.get(), c * per * sizeof(float));
      if (m.plan.has_summary)  // the summaries follow the batch's maps
        to_host(out.summary + 2 * row0, s.out.get() + std::size_t(b) * per, c * 2 * sizeof(float));
      to_host(out.flags + row0, d.flags.get(), c * sizeof(std::uint32_t));
      to_host(out.n_masked + row0 * arms, d.n_masked.get(), c * arms * sizeof(std::int32_t));
      to_host(out.snr + row0, d.snr.get(), c * sizeof(float));
      to_host(out.pixmask + row0 * npix, d.pixmask.get(), c * npix);
      // The next batch reuses the buffers; waiting here also reports any kernel fault.
      MGFAST_CUDA_CHECK(cudaStreamSynchronize(s.stream));
    }
  } catch (...) {
    cudaStreamSynchronize(s.stream);
    throw;
  }
}

GpuStageTimes GpuBackend::profile(const float* x, std::int64_t n) {
  Impl& m = *impl_;
  std::lock_guard<std::mutex> lock(m.mu);
  cuda::DeviceGuard guard(m.device);
  Slot& s = m.slots[0];
  cudaEvent_t e[4];
  for (cudaEvent_t& ev : e) MGFAST_CUDA_CHECK(cudaEventCreate(&ev));
  GpuStageTimes t;
  const std::int64_t b = m.batch;
  if (m.reads_ivar()) std::fill(s.host_ivar, s.host_ivar + b * m.net.n_in, 0.0f);
  const std::size_t out_bytes = m.out_floats() * sizeof(float);
  try {
    for (std::int64_t first = 0; first < n; first += b) {
      const std::int64_t count = std::min(b, n - first);
      std::memcpy(s.host_in, x + first * m.net.n_in, std::size_t(count) * m.net.n_in * 4);
      if (count < b) std::fill(s.host_in + count * m.net.n_in, s.host_in + b * m.net.n_in, 1.0f);
      MGFAST_CUDA_CHECK(cudaEventRecord(e[0], s.stream));
      m.copy_in(s);  // a multi-channel network's ivar too (0: profile takes no errors)
      MGFAST_CUDA_CHECK(cudaEventRecord(e[1], s.stream));
      m.enqueue_network(s, s.in.get(), s.ivar.get(), s.out.get());
      MGFAST_CUDA_CHECK(cudaEventRecord(e[2], s.stream));
      MGFAST_CUDA_CHECK(
          cudaMemcpyAsync(s.host_out, s.out.get(), out_bytes, cudaMemcpyDeviceToHost, s.stream));
      MGFAST_CUDA_CHECK(cudaEventRecord(e[3], s.stream));
      MGFAST_CUDA_CHECK(cudaEventSynchronize(e[3]));
      float ms = 0.0f;
      MGFAST_CUDA_CHECK(cudaEventElapsedTime(&ms, e[0], e[1]));
      t.h2d_ms += ms;
      MGFAST_CUDA_CHECK(cudaEventElapsedTime(&ms, e[1], e[2]));
      t.compute_ms += ms;
      MGFAST_CUDA_CHECK(cudaEventElapsedTime(&ms, e[2], e[3]));
      t.d2h_ms += ms;
      ++t.batches;
    }
  } catch (...) {
    for (cudaEvent_t& ev : e) cudaEventDestroy(ev);
    throw;
  }
  for (cudaEvent_t& ev : e) cudaEventDestroy(ev);
  return t;
}

bool GpuBackend::map_output() const { return impl_->net.map_output(); }
net::Shape GpuBackend::output_shape() const { return impl_->shapes.back(); }
int GpuBackend::n_in() const { return impl_->net.n_in; }
std::vector<std::string> GpuBackend::input_features() const { return impl_->net.input_features(); }
Precision GpuBackend::precision() const {
  return impl_->half ? Precision::kFp16 : Precision::kFp32;
}
std::string GpuBackend::device() const { return "cuda:" + std::to_string(impl_->device); }
int GpuBackend::device_index() const { return impl_->device; }
int GpuBackend::batch_size() const { return impl_->batch; }
int GpuBackend::slots() const { return static_cast<int>(impl_->slots.size()); }
bool GpuBackend::fp16() const { return impl_->half; }
double GpuBackend::flops_per_sample() const { return impl_->net.flops_per_sample(); }
std::string GpuBackend::graph_status() const { return impl_->graph_status; }

std::string GpuBackend::device_name() const { return cuda::device_name(impl_->device); }

std::string GpuBackend::library_versions() {
  const std::size_t v = cudnnGetVersion();
  int blas = 0;
  cublasGetProperty(MAJOR_VERSION, &blas);
  int minor = 0;
  cublasGetProperty(MINOR_VERSION, &minor);
  return "cuDNN " + std::to_string(v / 10000) + "." + std::to_string((v / 100) % 100) + "." +
         std::to_string(v % 100) + ", cuBLAS " + std::to_string(blas) + "." + std::to_string(minor);
}

}  // namespace mgfast
