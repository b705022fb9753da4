// CUDA driver of the doublet matched filter: the stage functions of matched_filter.hpp that the CPU
// driver calls, launched as one kernel per stage over a bounded chunk of spectra at a time.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "cuda_api.hpp"
#include "cuda_check.hpp"
#include "device_util.cuh"
#include "matched_filter.hpp"

namespace mgfast::cuda {

using matched_filter::Batch;
using matched_filter::Filter;
using matched_filter::Output;

namespace {

constexpr long long kNPix = grid::kNPix;

// One thread per (spectrum, arm): the arm's inverse variance when the spectrum has no errors
// (estimated from the flux), -1 when its own ivar is to be used.
__global__ void noise_kernel(int n_spec, const float* flux, const float* ivar, float* arm_ivar) {
  MGFAST_GRID_STRIDE(i, static_cast<long long>(n_spec) * grid::kNumArms) {
    const long long s = i / grid::kNumArms;
    const int a = static_cast<int>(i - s * grid::kNumArms);
    const bool errors = matched_filter::has_errors(ivar ? ivar + s * kNPix : nullptr);
    arm_ivar[i] = errors ? -1.0f : matched_filter::estimate_arm_ivar(flux + s * kNPix, a);
  }
}

__global__ void prepare_kernel(int n_spec, const float* flux, const float* ivar,
                               const float* arm_ivar, float* u, float* w) {
  MGFAST_GRID_STRIDE(i, static_cast<long long>(n_spec) * kNPix) {
    const long long s = i / kNPix;
    const int p = static_cast<int>(i - s * kNPix);
    const long long row = s * kNPix;
    matched_filter::prepare_pixel(flux + row, ivar ? ivar + row : nullptr,
                                  arm_ivar + s * grid::kNumArms, p, u + row, w + row);
  }
}

__global__ void significance_kernel(int n_spec, const Filter* f, const float* u, const float* w,
                                    float* sig) {
  const long long sig_row = static_cast<long long>(f->n_width) * kNPix;
  MGFAST_GRID_STRIDE(i, static_cast<long long>(n_spec) * kNPix) {
    const long long s = i / kNPix;
    const int p = static_cast<int>(i - s * kNPix);
    const long long row = s * kNPix;
    matched_filter::position_significance(u + row, w + row, *f, p, sig + s * sig_row);
  }
}

// The ratio test runs at few positions, so their sums are recomputed rather than kept.
__global__ void best_kernel(int n_spec, const Filter* f, const float* u, const float* w,
                            const float* sig, float* best_s, std::int8_t* best_w) {
  const long long sig_row = static_cast<long long>(f->n_width) * kNPix;
  MGFAST_GRID_STRIDE(i, static_cast<long long>(n_spec) * kNPix) {
    const long long s = i / kNPix;
    const int p = static_cast<int>(i - s * kNPix);
    const float* ur = u + s * kNPix;
    const float* wr = w + s * kNPix;
    auto sums = [&](int wi, int q) { return matched_filter::sums_at_pixel(ur, wr, *f, wi, q); };
    matched_filter::position_best(sig + s * sig_row, *f, p, sums, best_s + i, best_w + i);
  }
}

__global__ void finish_kernel(int n_spec, const Filter* f, const float* u, const float* w,
                              const float* sig, const float* best_s, const std::int8_t* best_w,
                              Output out) {
  const long long sig_row = static_cast<long long>(f->n_width) * kNPix;
  MGFAST_GRID_STRIDE(s, n_spec) {
    const long long row = s * kNPix;
    const float* ur = u + row;
    const float* wr = w + row;
    auto sums = [&](int wi, int q) { return matched_filter::sums_at_pixel(ur, wr, *f, wi, q); };
    matched_filter::finish_spectrum(sig + s * sig_row, best_s + row, best_w + row, *f, sums,
                                    static_cast<int>(s), out);
  }
}

}  // namespace

void matched_filter(const Batch& hb, const Filter& f, const Output& ho, int device) {
  require_device(device);
  if (hb.n_spec <= 0) return;
  // The caller runs matched_filter::validate (CPU library); this is the one shape whose violation
  // would be an out-of-bounds device read.
  if (hb.flux == nullptr) throw std::invalid_argument("flux: missing");

  DeviceGuard guard(device);
  Stream stream_owner;
  const cudaStream_t stream = stream_owner.get();

  const std::size_t npix = grid::kNPix;
  const std::size_t k = static_cast<std::size_t>(f.top_k);
  const std::size_t sig_row = static_cast<std::size_t>(f.n_width) * npix;
  std::size_t per_spec = npix * (4 * sizeof(float) + sizeof(std::int8_t)) +
                         sig_row * sizeof(float) + grid::kNumArms * sizeof(float) +
                         k * (2 * sizeof(float) + 2 * sizeof(double) + sizeof(std::int32_t));
  if (hb.ivar) per_spec += npix * sizeof(float);
  const int chunk = chunk_size(per_spec, 0, hb.n_spec);
  const std::size_t cn = static_cast<std::size_t>(chunk);

  DeviceBuffer<Filter> d_filter;
  DeviceBuffer<float> d_flux, d_ivar, d_arm_ivar, d_u, d_w, d_sig_all, d_best_s, d_sig, d_ew;
  DeviceBuffer<std::int8_t> d_best_w;
  DeviceBuffer<double> d_lambda, d_z;
  DeviceBuffer<std::int32_t> d_width;
  d_filter.allocate(1);
  d_flux.allocate(cn * npix);
  if (hb.ivar) d_ivar.allocate(cn * npix);
  d_arm_ivar.allocate(cn * grid::kNumArms);
  d_u.allocate(cn * npix);
  d_w.allocate(cn * npix);
  d_sig_all.allocate(cn * sig_row);
  d_best_s.allocate(cn * npix);
  d_best_w.allocate(cn * npix);
  d_sig.allocate(cn * k);
  d_lambda.allocate(cn * k);
  d_z.allocate(cn * k);
  d_ew.allocate(cn * k);
  d_width.allocate(cn * k);
  upload(d_filter.get(), &f, 1, stream);

  Output dout;
  dout.significance = d_sig.get();
  dout.lambda2796 = d_lambda.get();
  dout.redshift = d_z.get();
  dout.ew2796 = d_ew.get();
  dout.width = d_width.get();

  for (int start = 0; start < hb.n_spec; start += chunk) {
    const int count = std::min(chunk, hb.n_spec - start);
    const std::size_t c = static_cast<std::size_t>(count);
    const std::size_t off = static_cast<std::size_t>(start) * npix;
    const std::size_t koff = static_cast<std::size_t>(start) * k;
    upload(d_flux.get(), hb.flux + off, c * npix, stream);
    const float* ivar = nullptr;
    if (hb.ivar) {
      upload(d_ivar.get(), hb.ivar + off, c * npix, stream);
      ivar = d_ivar.get();
    }
    const long long n_px = static_cast<long long>(c * npix);
    MGFAST_LAUNCH(noise_kernel, static_cast<long long>(c * grid::kNumArms), kSmallBlock, stream,
                  count, d_flux.get(), ivar, d_arm_ivar.get());
    MGFAST_LAUNCH(prepare_kernel, n_px, kBlock, stream, count, d_flux.get(), ivar, d_arm_ivar.get(),
                  d_u.get(), d_w.get());
    MGFAST_LAUNCH(significance_kernel, n_px, kBlock, stream, count, d_filter.get(), d_u.get(),
                  d_w.get(), d_sig_all.get());
    MGFAST_LAUNCH(best_kernel, n_px, kBlock, stream, count, d_filter.get(), d_u.get(), d_w.get(),
                  d_sig_all.get(), d_best_s.get(), d_best_w.get());
    MGFAST_LAUNCH(finish_kernel, static_cast<long long>(count), kSmallBlock, stream, count,
                  d_filter.get(), d_u.get(), d_w.get(), d_sig_all.get(), d_best_s.get(),
                  d_best_w.get(), dout);
    download(ho.significance + koff, d_sig.get(), c * k, stream);
    download(ho.lambda2796 + koff, d_lambda.get(), c * k, stream);
    download(ho.redshift + koff, d_z.get(), c * k, stream);
    download(ho.ew2796 + koff, d_ew.get(), c * k, stream);
    download(ho.width + koff, d_width.get(), c * k, stream);
    // The next chunk overwrites these buffers; waiting here also reports any kernel fault.
    MGFAST_CUDA_CHECK(cudaStreamSynchronize(stream));
  }
}

}  // namespace mgfast::cuda
