// CUDA driver of the simulator: the stage functions of simulate.hpp launched as kernels, one
// thread per spectrum to plan and render it, one thread per (spectrum, pixel) for noise.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "cuda_api.hpp"
#include "device_util.cuh"
#include "simulate.hpp"

namespace mgfast::cuda {

namespace {

// One thread per spectrum: draw it, build its lines and render its noiseless transmission.
__global__ void plan_kernel(sim::Config cfg, std::uint64_t start, int n, sim::Sightline* truth,
                            sim::Line* lines, float* absorb, float* trans) {
  MGFAST_GRID_STRIDE(i, n) {
    sim::Line* l = lines + i * sim::kMaxLines;
    const int nl = sim::stage_plan(cfg, start + static_cast<std::uint64_t>(i), &truth[i], l);
    sim::render_spectrum(l, nl, truth[i].resolution, absorb + i * sim::kMaxArmSamples,
                         trans + i * grid::kNPix);
  }
}

__global__ void pixel_kernel(sim::Config cfg, std::uint64_t start, int n,
                             const sim::Sightline* truth, const float* trans, float* flux,
                             float* err) {
  MGFAST_GRID_STRIDE(i, static_cast<long long>(n) * sim::kNPixelPairs) {
    const long long s = i / sim::kNPixelPairs;
    const int k = static_cast<int>(i - s * sim::kNPixelPairs);
    const long long row = s * grid::kNPix;
    sim::stage_pixel_pair(cfg, start + static_cast<std::uint64_t>(s), truth[s], trans + row, k,
                          flux + row, err + row);
  }
}

}  // namespace

void simulate(const sim::Config& cfg_host, std::uint64_t start, int n, float* flux, float* err,
              float* clean, sim::Sightline* truth, int device) {
  require_device(device);
  if (n <= 0) return;
  DeviceGuard guard(device);
  Stream stream_owner;
  const cudaStream_t stream = stream_owner.get();

  // The SNR list is the one pointer in the configuration: give the device its own copy.
  DeviceBuffer<double> d_snr;
  d_snr.allocate(cfg_host.n_snr);
  upload(d_snr.get(), cfg_host.snr_values, cfg_host.n_snr, stream);
  sim::Config cfg = cfg_host;
  cfg.snr_values = d_snr.get();

  // Per spectrum: its lines, the rendering scratch, transmission, flux and error, its truth row.
  // One thread plans and renders a spectrum. Chunks of the default scratch budget (1 GiB, about
  // 3,800 spectra) gave 47,000 idealised spectra/s on an H200 (docs/BENCHMARKS.md); an 8 GiB
  // budget did not finish 60,000 spectra in a minute there (each thread's scratch is its own
  // 172 kB: the warps' accesses are strided, so more threads in flight thrash the L2). A block
  // per spectrum, rendering its samples in parallel, is the way to fill the device.
  const std::size_t npix = grid::kNPix;
  const std::size_t per_spec = sim::kMaxLines * sizeof(sim::Line) +
                               sim::kMaxArmSamples * sizeof(float) + 3 * npix * sizeof(float) +
                               sizeof(sim::Sightline);
  const int chunk = chunk_size(per_spec, 0, n);
  const std::size_t cn = static_cast<std::size_t>(chunk);
  DeviceBuffer<sim::Sightline> d_truth;
  DeviceBuffer<sim::Line> d_lines;
  DeviceBuffer<float> d_absorb, d_trans, d_flux, d_err;
  d_truth.allocate(cn);
  d_lines.allocate(cn * sim::kMaxLines);
  d_absorb.allocate(cn * sim::kMaxArmSamples);
  d_trans.allocate(cn * npix);
  d_flux.allocate(cn * npix);
  d_err.allocate(cn * npix);

  for (int first = 0; first < n; first += chunk) {
    const int count = std::min(chunk, n - first);
    const std::size_t c = static_cast<std::size_t>(count);
    const std::uint64_t s0 = start + static_cast<std::uint64_t>(first);
    MGFAST_LAUNCH(plan_kernel, count, kSmallBlock, stream, cfg, s0, count, d_truth.get(),
                  d_lines.get(), d_absorb.get(), d_trans.get());
    MGFAST_LAUNCH(pixel_kernel, static_cast<long long>(c * sim::kNPixelPairs), kBlock, stream, cfg,
                  s0, count, d_truth.get(), d_trans.get(), d_flux.get(), d_err.get());
    const std::size_t off = static_cast<std::size_t>(first) * npix;
    download(flux + off, d_flux.get(), c * npix, stream);
    download(err + off, d_err.get(), c * npix, stream);
    if (clean) download(clean + off, d_trans.get(), c * npix, stream);
    download(truth + first, d_truth.get(), c, stream);
    // The next chunk reuses the buffers; waiting here also reports any kernel fault.
    MGFAST_CUDA_CHECK(cudaStreamSynchronize(stream));
  }
}

}  // namespace mgfast::cuda
