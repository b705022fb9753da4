// The CPU inference backend: a net::Network run with oneDNN in fp32 or bf16, an mgfast::Engine
// (include/mgfast/engine.hpp). Primitives are built once per chunk size and thread, memory is
// reused between calls; oneDNN stays out of this header.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "mgfast/engine.hpp"
#include "network.hpp"

namespace mgfast {

// Whether this build has the oneDNN backend, and oneDNN's version ("" without it).
bool onednn_available();
std::string onednn_version();

class CpuBackend final : public Engine {
 public:
  // threads: worker threads (0: all hardware threads), each running oneDNN on one thread (its
  // OpenMP thread count is set to 1 around each call and restored after) on its own chunks of
  // the spectra; results do not depend on the thread count.
  // batch_size: at most this many spectra per chunk; primitives are built once per chunk size.
  // fast_conv: even-kernel convolutions by the 2-parallel fast FIR algorithm (3/4 of the flops,
  // same result within fp32 rounding); false runs every convolution directly.
  // bf16: convolutions and pooling with bf16 activations and weights (fp32 accumulation, fp32
  // bias, dense layers and heads), on CPUs with AVX512-BF16 or AMX; fast_conv and the fused
  // first layer are fp32-only and not used then.
  // Throws std::invalid_argument for a network the backend cannot run (or bf16 on a CPU without
  // bf16 kernels) and std::runtime_error when built without oneDNN.
  CpuBackend(net::Network network, int threads, int batch_size, bool fast_conv = true,
             bool bf16 = false);
  ~CpuBackend();
  CpuBackend(const CpuBackend&) = delete;
  CpuBackend& operator=(const CpuBackend&) = delete;

  // The contract's infer (and its spellings infer(x, n, prob, lam, ivar) and infer_map(x, n,
  // out, summary, ivar)): x (n, n_in) row-major; prob and lam n values each, or the map
  // (n, length, channels) and for a branched network (mgfast_dual) its heatmap head's
  // (probability, λ2796) into summary (n × 2) when given. ivar: (n, n_in) inverse variances
  // beside x, read by a network with more input channels than the flux (features.hpp; null: no
  // errors known, every pixel's noise channels 0). Calls on one object are serialised. Throws
  // std::logic_error when `out` lacks what the network writes.
  using Engine::infer;
  void infer(const EngineBatch& batch, const EngineOutput& out) override;

  int n_in() const override;
  std::vector<std::string> input_features() const override;
  bool map_output() const override;
  bool has_summary() const override;
  net::Shape output_shape() const override;  // the map's (channels, length); (2, 1) for heads
  Precision precision() const override;
  std::string device() const override { return "cpu"; }
  int batch_size() const override;
  double flops_per_sample() const override;

  int threads() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mgfast
