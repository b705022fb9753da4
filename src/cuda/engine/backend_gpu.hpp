// The GPU inference backend: a net::Network run with cuDNN (convolutions) and cuBLAS (dense
// layers), in fp32 or in fp16 with fp32 accumulation, channels-last. Batches move through a ring
// of pinned host buffers, each slot with its own CUDA stream, device buffers and (when capture
// works) a CUDA graph of copy-in, network and copy-out, so that the host's copies into one slot
// overlap the device's work on the others. An mgfast::Engine (include/mgfast/engine.hpp). No
// CUDA, cuDNN or cuBLAS types in this header.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "mgfast/engine.hpp"
#include "network.hpp"
#include "pipeline.hpp"

namespace mgfast {

// Time spent per stage, summed over the batches of one profile() call (milliseconds), each stage
// timed alone with CUDA events (the stages are serialised for the measurement).
struct GpuStageTimes {
  double h2d_ms = 0.0;      // pinned host -> device copies of the input
  double compute_ms = 0.0;  // the network
  double d2h_ms = 0.0;      // device -> pinned host copies of the output
  std::int64_t batches = 0;
};

// The streams on which the producers of device arrays queued their work (each array's
// __cuda_array_interface__ "stream": 1 the legacy default stream, 2 the per-thread default
// stream, another value a cudaStream_t, kNoProducerStream where no synchronisation is needed).
// The GPU calls order their work after each of them.
using ProducerStreams = std::vector<std::uintptr_t>;
constexpr std::uintptr_t kNoProducerStream = 0;

// Where detect_device puts its results: host memory, n rows each.
struct DeviceDetectOutput {
  float* out = nullptr;              // (n, map length, channels) or (n, 2) probability, λ2796
  float* summary = nullptr;          // (n, 2) for a branched network; may be null otherwise
  std::uint32_t* flags = nullptr;    // (n,) preprocessing flags (mgfast.SpectrumFlag)
  std::int32_t* n_masked = nullptr;  // (n, kNumArms)
  float* snr = nullptr;              // (n,) median sqrt(ivar) over pixels with ivar > 0, or NaN
  std::uint8_t* pixmask = nullptr;   // (n, kNPix) per-pixel flags, for the detection flags
};

class GpuBackend final : public Engine {
 public:
  // device: CUDA device index. batch_size: spectra per launch (the graphs' fixed shape; a last
  // partial batch runs padded). fp16: activations and weights in half precision with fp32
  // accumulation (tensor cores); false: fp32 throughout (no TF32). slots: ring depth (>= 2;
  // 3 lets copy-in, compute and copy-out of three batches overlap). graphs: capture each slot's
  // work as a CUDA graph (falls back to plain launches, see graph_status(), if capture fails).
  // Throws std::invalid_argument for a network the backend cannot run or bad sizes, and
  // std::runtime_error naming the device for a missing device or a CUDA/cuDNN/cuBLAS failure.
  GpuBackend(net::Network network, int device, int batch_size, bool fp16, int slots = 3,
             bool graphs = true);
  ~GpuBackend();
  GpuBackend(const GpuBackend&) = delete;
  GpuBackend& operator=(const GpuBackend&) = delete;

  // Host memory in and out: the contract's infer (and its spellings infer(x, n, prob, lam,
  // ivar) and infer_map(x, n, out, summary, ivar)). x: (n, n_in) row-major; prob and lam: n
  // values each, or the map (n, length, channels) row-major and for a branched network its
  // heatmap head's (probability, λ2796) into summary (n × 2) when given. Calls on one object
  // are serialised. ivar: (n, n_in) inverse variances beside x, read by a network with more
  // input channels than the flux (features.hpp; null: no errors known, the noise channels 0);
  // copied in beside the flux. Throws std::logic_error when `out` lacks what the network writes.
  using Engine::infer;
  void infer(const EngineBatch& batch, const EngineOutput& out) override;
  bool has_summary() const override;
  // Device memory in and out (pointers on this backend's device, e.g. from CuPy or PyTorch):
  // x (n, n_in) float32; out: (n, 2) interleaved (probability, λ2796), or the map. The work is
  // ordered after everything already queued on the producers' streams and finished when this
  // returns. Throws std::invalid_argument for a multi-channel network (it needs the ivar:
  // detect_device computes it on the device).
  void infer_device(const float* x, std::int64_t n, float* out,
                    const ProducerStreams& producers = {1});

  // Spectra on the grid already in this backend's device memory (batch: device pointers, on_grid,
  // no r_in): preprocessing, the per-spectrum SNR and the network on the device, batch by batch,
  // with only the results (and the uint8 pixel mask) copied to the host; the spectra never are.
  // Ordered after the work already queued on the producers' streams. Throws
  // std::invalid_argument for off-grid input, a network that does not read the grid, or pointers
  // that are not memory on this device. A multi-channel network reads the preprocessed ivar
  // beside the flux (features.hpp) and needs err or ivar (std::invalid_argument without).
  void detect_device(const pipeline::Batch& batch, const pipeline::Options& o,
                     const DeviceDetectOutput& out, const ProducerStreams& producers = {1});

  // Runs the input (host memory) through the network batch by batch with every stage timed on
  // its own; the results are discarded. A multi-channel network gets ivar 0 (its copy is
  // timed with the flux's).
  GpuStageTimes profile(const float* x, std::int64_t n);

  bool map_output() const override;
  net::Shape output_shape() const override;  // the map's (channels, length); (2, 1) for heads
  int n_in() const override;
  std::vector<std::string> input_features() const override;
  Precision precision() const override;  // fp32 or fp16
  std::string device() const override;   // "cuda:N"
  int device_index() const;
  int batch_size() const override;
  int slots() const;
  bool fp16() const;
  double flops_per_sample() const override;
  std::string device_name() const;
  // "graphs": every slot runs a captured graph; otherwise why plain launches are used.
  std::string graph_status() const;
  // "cuDNN x.y.z, cuBLAS n" as loaded at run time.
  static std::string library_versions();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mgfast
