// CUDA driver of the preprocessing stages in pipeline.hpp: the same stage functions the CPU driver
// calls, launched as one kernel per stage over a bounded chunk of spectra at a time.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cub/block/block_radix_sort.cuh>
#include <stdexcept>
#include <string>

#include "cuda_api.hpp"
#include "cuda_check.hpp"
#include "device_util.cuh"
#include "pipeline.hpp"
#include "preprocess_device.cuh"

namespace mgfast::cuda {

using pipeline::Batch;
using pipeline::Options;
using pipeline::Output;

namespace {

// Input-pixel edges (Å) of `rows` wavelength rows, and their logarithms when degrading.
__global__ void edges_kernel(int rows, int n_in, const double* wave, bool want_ln, double* edge,
                             double* lnedge) {
  const long long n_edge = n_in + 1;
  MGFAST_GRID_STRIDE(i, rows * n_edge) {
    const long long r = i / n_edge;
    const int k = static_cast<int>(i - r * n_edge);
    const double e = resample::input_edge(wave + r * n_in, n_in, k);
    edge[i] = e;
    if (want_ln) lnedge[i] = log(e);
  }
}

__global__ void input_kernel(Batch b, std::uint8_t* good, double* var) {
  MGFAST_GRID_STRIDE(i, static_cast<long long>(b.n_spec) * b.n_in) {
    const int s = static_cast<int>(i / b.n_in);
    const int j = static_cast<int>(i - static_cast<long long>(s) * b.n_in);
    const long long row = static_cast<long long>(s) * b.n_in;
    pipeline::stage_input(b, s, j, good + row, var + row);
  }
}

__global__ void rebin_kernel(Batch b, Options o, const double* edge, const double* lnedge,
                             bool edge_per_spectrum, const double* var, const std::uint8_t* good,
                             float* out_flux, float* out_ivar, std::uint8_t* out_mask) {
  MGFAST_GRID_STRIDE(i, static_cast<long long>(b.n_spec) * grid::kNPix) {
    const int s = static_cast<int>(i / grid::kNPix);
    const int p = static_cast<int>(i - static_cast<long long>(s) * grid::kNPix);
    const long long in_row = static_cast<long long>(s) * b.n_in;
    const long long out_row = static_cast<long long>(s) * grid::kNPix;
    const long long edge_row = edge_per_spectrum ? static_cast<long long>(s) * (b.n_in + 1) : 0;
    const double sigma = pipeline::sigma_for(b, s);
    pipeline::stage_rebin(b, o, p, sigma, b.on_grid ? nullptr : edge + edge_row,
                          (b.on_grid || !(sigma > 0.0)) ? nullptr : lnedge + edge_row,
                          b.flux + in_row, var + in_row, good + in_row, out_flux + out_row,
                          out_ivar + out_row, out_mask + out_row);
  }
}

__global__ void fill_one_kernel(long long n, float* x) {
  MGFAST_GRID_STRIDE(i, n) { x[i] = 1.0f; }
}

// One thread per (spectrum, arm): arms touch disjoint pixel ranges, so they run concurrently.
// Each gets its own 2 * n bytes of work at 2 * (arm start) within the spectrum's 2 * kNPix.
__global__ void arm_kernel(Options o, bool have_err, int n_spec, const double* z_em, float* flux,
                           float* ivar, std::uint8_t* mask, float* cont, std::uint8_t* work,
                           std::uint32_t* arm_flags) {
  MGFAST_GRID_STRIDE(i, static_cast<long long>(n_spec) * grid::kNumArms) {
    const int s = static_cast<int>(i / grid::kNumArms);
    const int a = static_cast<int>(i - static_cast<long long>(s) * grid::kNumArms);
    const long long row = static_cast<long long>(s) * grid::kNPix;
    std::uint8_t* w = work + 2 * row + 2 * grid::arm_start(a);
    arm_flags[i] = pipeline::stage_arm(o, have_err, a, flux + row, ivar + row, mask + row,
                                       cont + row, w, nullptr, z_em ? z_em[s] : NAN);
  }
}

__global__ void fill_kernel(int n_spec, float* flux, float* ivar, std::uint8_t* mask) {
  MGFAST_GRID_STRIDE(i, static_cast<long long>(n_spec) * grid::kNPix) {
    const long long s = i / grid::kNPix;
    const int p = static_cast<int>(i - s * grid::kNPix);
    const long long row = s * grid::kNPix;
    pipeline::stage_fill(p, flux + row, ivar + row, mask + row);
  }
}

__global__ void summary_kernel(Batch b, const std::uint8_t* mask, const std::uint32_t* arm_flags,
                               std::int32_t* n_masked, std::uint32_t* flags) {
  MGFAST_GRID_STRIDE(i, b.n_spec) {
    const int s = static_cast<int>(i);
    std::uint32_t f = 0u;
    for (int a = 0; a < grid::kNumArms; ++a) f |= arm_flags[i * grid::kNumArms + a];
    f |= pipeline::stage_summary(b, s, mask + i * grid::kNPix, n_masked + i * grid::kNumArms);
    flags[i] = f;
  }
}

// One block per spectrum: its sqrt(ivar) (+inf where ivar <= 0) sorted in the block, then the
// middle one or the mean of the middle two among the finite ones.
constexpr int kSnrThreads = 256;
constexpr int kSnrItems = (grid::kNPix + kSnrThreads - 1) / kSnrThreads;

__global__ void __launch_bounds__(kSnrThreads)
    median_snr_kernel(const float* ivar, int n_spec, float* snr) {
  using Sort = cub::BlockRadixSort<float, kSnrThreads, kSnrItems>;
  __shared__ typename Sort::TempStorage temp;
  __shared__ float middle[2];
  __shared__ int total;
  for (int s = blockIdx.x; s < n_spec; s += gridDim.x) {
    const float* row = ivar + static_cast<long long>(s) * grid::kNPix;
    float key[kSnrItems];
    int valid = 0;
    for (int k = 0; k < kSnrItems; ++k) {
      const int p = threadIdx.x * kSnrItems + k;  // blocked: thread t holds items t*K .. t*K+K-1
      const float v = p < grid::kNPix ? row[p] : 0.0f;
      valid += v > 0.0f ? 1 : 0;
      key[k] = v > 0.0f ? sqrtf(v) : INFINITY;
    }
    if (threadIdx.x == 0) total = 0;
    __syncthreads();
    if (valid) atomicAdd(&total, valid);
    Sort(temp).Sort(key);
    __syncthreads();
    const int count = total;
    const int lo = (count - 1) / 2, hi = count / 2;
    for (int k = 0; k < kSnrItems; ++k) {
      const int idx = threadIdx.x * kSnrItems + k;
      if (idx == lo) middle[0] = key[k];
      if (idx == hi) middle[1] = key[k];
    }
    __syncthreads();
    if (threadIdx.x == 0) snr[s] = count == 0 ? NAN : (middle[0] + middle[1]) * 0.5f;
    __syncthreads();  // middle and total are reused by the block's next spectrum
  }
}

}  // namespace

void enqueue_preprocess(const Batch& db, const Options& o, const double* edge, const double* lnedge,
                        bool per_wave, const PreprocessScratch& scratch, const Output& out,
                        cudaStream_t stream) {
  const std::size_t c = static_cast<std::size_t>(db.n_spec);
  const long long n_in_px = static_cast<long long>(c) * db.n_in;
  const long long n_out_px = static_cast<long long>(c * grid::kNPix);
  float* cont = out.continuum ? out.continuum : scratch.cont;
  MGFAST_LAUNCH(input_kernel, n_in_px, kBlock, stream, db, scratch.good, scratch.var);
  MGFAST_LAUNCH(rebin_kernel, n_out_px, kBlock, stream, db, o, edge, lnedge, per_wave, scratch.var,
                scratch.good, out.flux, out.ivar, out.pixmask);
  MGFAST_LAUNCH(fill_one_kernel, n_out_px, kBlock, stream, n_out_px, cont);
  MGFAST_LAUNCH(arm_kernel, static_cast<long long>(c * grid::kNumArms), kSmallBlock, stream, o,
                db.err != nullptr, db.n_spec, db.z_em, out.flux, out.ivar, out.pixmask, cont,
                scratch.work, scratch.arm_flags);
  MGFAST_LAUNCH(fill_kernel, n_out_px, kBlock, stream, db.n_spec, out.flux, out.ivar, out.pixmask);
  MGFAST_LAUNCH(summary_kernel, static_cast<long long>(c), kBlock, stream, db, out.pixmask,
                scratch.arm_flags, out.n_masked, out.flags);
}

void enqueue_median_snr(const float* ivar, int n_spec, float* snr, cudaStream_t stream) {
  if (n_spec <= 0) return;
  const int grid_blocks = static_cast<int>(std::min<long long>(n_spec, kMaxBlocks));
  median_snr_kernel<<<grid_blocks, kSnrThreads, 0, stream>>>(ivar, n_spec, snr);
  MGFAST_CUDA_CHECK(cudaGetLastError());
}

void preprocess(const Batch& hb, const Options& o, Output& ho, int device) {
  require_device(device);
  if (hb.n_spec <= 0) return;
  // The caller runs validate_batch (it lives in the CPU library, which this one does not link);
  // these are only the shapes whose violation would be an out-of-bounds device read.
  if (hb.flux == nullptr) throw std::invalid_argument("flux: missing");
  if (hb.on_grid ? hb.n_in != grid::kNPix : (hb.n_in < 2 || hb.wave == nullptr))
    throw std::invalid_argument("flux/wave: inconsistent input shape (run validate_batch first)");

  DeviceGuard guard(device);
  Stream stream_owner;
  const cudaStream_t stream = stream_owner.get();

  const int n_in = hb.n_in;
  const std::size_t in = static_cast<std::size_t>(n_in);
  const std::size_t n_edge = in + 1;
  const std::size_t npix = grid::kNPix;
  const bool shared_wave = !hb.on_grid && !hb.wave_per_spectrum;
  const bool per_wave = !hb.on_grid && hb.wave_per_spectrum;
  bool any_smooth = false;
  if (!hb.on_grid)
    for (int s = 0; s < hb.n_spec && !any_smooth; ++s)
      any_smooth = pipeline::sigma_for(hb, s) > 0.0;
  const std::size_t edge_arrays = any_smooth ? 2 : 1;

  // Device bytes per spectrum of a chunk, and those shared by all chunks.
  std::size_t per_spec = in * sizeof(float) + in * (sizeof(std::uint8_t) + sizeof(double)) +
                         npix * (2 * sizeof(float) + sizeof(std::uint8_t) + sizeof(float)) +
                         2 * npix + sizeof(std::uint32_t) +
                         grid::kNumArms * (sizeof(std::int32_t) + sizeof(std::uint32_t));
  if (hb.err) per_spec += in * sizeof(float);
  if (hb.mask) per_spec += in * sizeof(std::uint32_t);
  if (hb.r_in) per_spec += sizeof(double);
  if (hb.z_em) per_spec += sizeof(double);
  if (per_wave) per_spec += in * sizeof(double) + edge_arrays * n_edge * sizeof(double);
  const std::size_t fixed =
      shared_wave ? in * sizeof(double) + edge_arrays * n_edge * sizeof(double) : 0;

  const int chunk = chunk_size(per_spec, fixed, hb.n_spec);
  const std::size_t cn = static_cast<std::size_t>(chunk);

  DeviceBuffer<double> d_wave, d_edge, d_lnedge, d_r_in, d_z_em, d_var;
  DeviceBuffer<float> d_flux, d_err, d_out_flux, d_out_ivar, d_cont;
  DeviceBuffer<std::uint32_t> d_mask, d_arm_flags, d_flags;
  DeviceBuffer<std::uint8_t> d_good, d_pixmask, d_work;
  DeviceBuffer<std::int32_t> d_n_masked;

  const std::size_t wave_rows = per_wave ? cn : 1;
  if (!hb.on_grid) {
    d_wave.allocate(wave_rows * in);
    d_edge.allocate(wave_rows * n_edge);
    if (any_smooth) d_lnedge.allocate(wave_rows * n_edge);
  }
  d_flux.allocate(cn * in);
  if (hb.err) d_err.allocate(cn * in);
  if (hb.mask) d_mask.allocate(cn * in);
  if (hb.r_in) d_r_in.allocate(cn);
  if (hb.z_em) d_z_em.allocate(cn);
  d_good.allocate(cn * in);
  d_var.allocate(cn * in);
  d_out_flux.allocate(cn * npix);
  d_out_ivar.allocate(cn * npix);
  d_pixmask.allocate(cn * npix);
  // Always on the device: stage_arm writes a continuum whether or not the caller wants it.
  d_cont.allocate(cn * npix);
  d_work.allocate(cn * 2 * npix);
  d_arm_flags.allocate(cn * grid::kNumArms);
  d_flags.allocate(cn);
  d_n_masked.allocate(cn * grid::kNumArms);

  // Edges of a shared wavelength row are computed once for all chunks.
  if (shared_wave) {
    upload(d_wave.get(), hb.wave, in, stream);
    MGFAST_LAUNCH(edges_kernel, static_cast<long long>(n_edge), kBlock, stream, 1, n_in,
                  d_wave.get(), any_smooth, d_edge.get(), d_lnedge.get());
  }

  // Every chunk's outputs and scratch live in the same device buffers.
  Output dout;
  dout.flux = d_out_flux.get();
  dout.ivar = d_out_ivar.get();
  dout.pixmask = d_pixmask.get();
  dout.flags = d_flags.get();
  dout.n_masked = d_n_masked.get();
  dout.continuum = d_cont.get();
  PreprocessScratch scratch;
  scratch.good = d_good.get();
  scratch.var = d_var.get();
  scratch.work = d_work.get();
  scratch.arm_flags = d_arm_flags.get();

  for (int start = 0; start < hb.n_spec; start += chunk) {
    const int count = std::min(chunk, hb.n_spec - start);
    const std::size_t c = static_cast<std::size_t>(count);
    const std::size_t in_off = static_cast<std::size_t>(start) * in;
    const std::size_t out_off = static_cast<std::size_t>(start) * npix;
    const std::size_t arm_off = static_cast<std::size_t>(start) * grid::kNumArms;

    // The chunk's batch on the device: spectrum indices restart at 0 within the chunk.
    Batch db = hb;
    db.n_spec = count;
    upload(d_flux.get(), hb.flux + in_off, c * in, stream);
    db.flux = d_flux.get();
    if (hb.err) {
      upload(d_err.get(), hb.err + in_off, c * in, stream);
      db.err = d_err.get();
    }
    if (hb.mask) {
      upload(d_mask.get(), hb.mask + in_off, c * in, stream);
      db.mask = d_mask.get();
    }
    if (hb.r_in) {
      upload(d_r_in.get(), hb.r_in + start, c, stream);
      db.r_in = d_r_in.get();
    }
    if (hb.z_em) {
      upload(d_z_em.get(), hb.z_em + start, c, stream);
      db.z_em = d_z_em.get();
    }
    if (per_wave) {
      upload(d_wave.get(), hb.wave + in_off, c * in, stream);
      MGFAST_LAUNCH(edges_kernel, static_cast<long long>(c * n_edge), kBlock, stream, count, n_in,
                    d_wave.get(), any_smooth, d_edge.get(), d_lnedge.get());
    }
    db.wave = hb.on_grid ? nullptr : d_wave.get();

    enqueue_preprocess(db, o, d_edge.get(), d_lnedge.get(), per_wave, scratch, dout, stream);

    download(ho.flux + out_off, d_out_flux.get(), c * npix, stream);
    download(ho.ivar + out_off, d_out_ivar.get(), c * npix, stream);
    download(ho.pixmask + out_off, d_pixmask.get(), c * npix, stream);
    download(ho.flags + start, d_flags.get(), c, stream);
    download(ho.n_masked + arm_off, d_n_masked.get(), c * grid::kNumArms, stream);
    if (ho.continuum) download(ho.continuum + out_off, d_cont.get(), c * npix, stream);
    // The next chunk overwrites these buffers; waiting here also reports any kernel fault.
    MGFAST_CUDA_CHECK(cudaStreamSynchronize(stream));
  }
}

}  // namespace mgfast::cuda
