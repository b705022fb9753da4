// CPU driver of the preprocessing stages: spectra are split across threads, each thread runs all
// stages of one spectrum in turn with its own scratch rows.
#include "preprocess.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "parallel.hpp"

namespace mgfast {

using pipeline::Batch;
using pipeline::Options;
using pipeline::Output;

namespace {

void check_increasing(const double* w, int n, const std::string& what) {
  for (int j = 0; j < n; ++j) {
    if (!std::isfinite(w[j]) || w[j] <= 0.0)
      throw std::invalid_argument(what + ": wavelength at index " + std::to_string(j) +
                                  " is not a finite positive number");
    if (j > 0 && !(w[j] > w[j - 1]))
      throw std::invalid_argument(what + ": wavelengths must increase strictly, but index " +
                                  std::to_string(j) + " does not exceed the one before");
  }
}

// Pixel edges of one input row in Å and, when degrading, in ln λ.
void input_edges(const double* wave, int n, std::vector<double>& edge, std::vector<double>& lnedge,
                 bool want_ln) {
  edge.resize(n + 1);
  for (int k = 0; k <= n; ++k) edge[k] = resample::input_edge(wave, n, k);
  if (want_ln) {
    lnedge.resize(n + 1);
    for (int k = 0; k <= n; ++k) lnedge[k] = std::log(edge[k]);
  }
}

struct Scratch {
  std::vector<std::uint8_t> good, work;
  std::vector<double> var, edge, lnedge, lsf_terms;
  std::vector<float> cont;
};

}  // namespace

void median_snr_cpu(const float* ivar, std::int64_t n_spec, int n_pix, float* snr, int threads) {
  parallel_for(n_spec, threads, 64, [&](std::int64_t begin, std::int64_t end, int) {
    std::vector<float> v(static_cast<std::size_t>(n_pix));
    for (std::int64_t s = begin; s < end; ++s) {
      const float* row = ivar + s * n_pix;
      std::size_t n = 0;
      for (int p = 0; p < n_pix; ++p) {  // branch-free compaction of the usable pixels
        v[n] = row[p];
        n += row[p] > 0.0f ? 1 : 0;
      }
      if (n == 0) {
        snr[s] = std::numeric_limits<float>::quiet_NaN();
        continue;
      }
      // Selected on ivar (sqrt is monotonic), the square roots taken of the middle ones only.
      const auto hi = v.begin() + static_cast<std::ptrdiff_t>(n / 2);
      std::nth_element(v.begin(), hi, v.begin() + static_cast<std::ptrdiff_t>(n));
      float mid = std::sqrt(*hi);
      if (n % 2 == 0) {  // the largest of the lower half is the other middle value
        const float lo = std::sqrt(*std::max_element(v.begin(), hi));
        mid = (lo + mid) * 0.5f;
      }
      snr[s] = mid;
    }
  });
}

void validate_batch(const Batch& b) {
  if (b.n_spec < 0) throw std::invalid_argument("flux: negative number of spectra");
  if (b.flux == nullptr && b.n_spec > 0) throw std::invalid_argument("flux: missing");
  if (b.on_grid) {
    if (b.n_in != grid::kNPix)
      throw std::invalid_argument("flux: on-grid input needs " + std::to_string(grid::kNPix) +
                                  " pixels per spectrum, got " + std::to_string(b.n_in));
  } else {
    if (b.n_in < 2) throw std::invalid_argument("wave: need at least 2 pixels per spectrum");
    if (b.wave == nullptr) throw std::invalid_argument("wave: missing for off-grid input");
    const int rows = b.wave_per_spectrum ? b.n_spec : 1;
    for (int r = 0; r < rows; ++r)
      check_increasing(b.wave + static_cast<long long>(r) * b.n_in, b.n_in,
                       b.wave_per_spectrum ? "wave[" + std::to_string(r) + "]" : "wave");
  }
  if (b.z_em)
    for (int s = 0; s < b.n_spec; ++s)
      if (std::isinf(b.z_em[s]) || b.z_em[s] < 0.0)
        throw std::invalid_argument("z_em[" + std::to_string(s) +
                                    "]: must be >= 0 or NaN (unknown)");
  if (b.r_in) {
    for (int s = 0; s < b.n_spec; ++s)
      if (!(b.r_in[s] > 0.0) || !std::isfinite(b.r_in[s]))
        throw std::invalid_argument("resolution[" + std::to_string(s) +
                                    "]: resolving power must be finite and positive");
    if (b.on_grid)
      for (int s = 0; s < b.n_spec; ++s)
        if (pipeline::sigma_for(b, s) > 0.0)
          throw std::invalid_argument(
              "resolution: on-grid input cannot be degraded (the grid "
              "samples R = 20000 at one pixel per element); pass wave");
  }
}

void preprocess_cpu(const Batch& b, const Options& o, Output& out, int threads) {
  validate_batch(b);
  const int n_in = b.n_in;
  const bool any_smooth = [&] {
    for (int s = 0; s < b.n_spec; ++s)
      if (pipeline::sigma_for(b, s) > 0.0) return true;
    return false;
  }();
  // Edges of a shared wavelength row are computed once for all spectra.
  std::vector<double> shared_edge, shared_lnedge;
  if (!b.on_grid && !b.wave_per_spectrum)
    input_edges(b.wave, n_in, shared_edge, shared_lnedge, any_smooth);

  const int nt = resolve_threads(threads);
  std::vector<Scratch> scratch(nt);
  // Each arm's spline basis, computed once for every fit (continuum::Basis).
  std::vector<double> basis_values(4 * static_cast<std::size_t>(grid::kNPix));
  std::vector<int> basis_segment(grid::kNPix);
  continuum::Basis basis[grid::kNumArms];
  for (int a = 0; a < grid::kNumArms; ++a) {
    const int p0 = grid::arm_start(a);
    continuum::fill_basis(grid::arm_npix(a), o.continuum.knot_spacing, &basis_values[4 * p0],
                          &basis_segment[p0]);
    basis[a] = {&basis_values[4 * p0], &basis_segment[p0]};
  }
  parallel_for(b.n_spec, nt, 16, [&](std::int64_t begin, std::int64_t end, int worker) {
    Scratch& w = scratch[worker];
    w.good.resize(n_in);
    w.var.resize(n_in);
    w.work.resize(2 * grid::kNPix);
    w.cont.resize(grid::kNPix);
    w.lsf_terms.resize(static_cast<std::size_t>(n_in) + 1);
    for (std::int64_t s64 = begin; s64 < end; ++s64) {
      const int s = static_cast<int>(s64);
      const std::size_t row = static_cast<std::size_t>(s) * grid::kNPix;
      const double sigma = pipeline::sigma_for(b, s);
      for (int j = 0; j < n_in; ++j) pipeline::stage_input(b, s, j, w.good.data(), w.var.data());

      const float* flux = b.flux + static_cast<std::size_t>(s) * n_in;
      const double* edge = nullptr;
      const double* lnedge = nullptr;
      if (!b.on_grid) {
        if (b.wave_per_spectrum) {
          input_edges(b.wave + static_cast<std::size_t>(s) * n_in, n_in, w.edge, w.lnedge,
                      sigma > 0.0);
          edge = w.edge.data();
          lnedge = w.lnedge.data();
        } else {
          edge = shared_edge.data();
          lnedge = shared_lnedge.data();
        }
      }

      float* of = out.flux + row;
      float* oi = out.ivar + row;
      std::uint8_t* om = out.pixmask + row;
      resample::LsfEdgeCache lsf_cache{w.lsf_terms.data()};  // this spectrum's, in pixel order
      int cursor = 0;                                        // likewise
      for (int p = 0; p < grid::kNPix; ++p)
        pipeline::stage_rebin(b, o, p, sigma, edge, lnedge, flux, w.var.data(), w.good.data(), of,
                              oi, om, &lsf_cache, &cursor);

      float* cont = out.continuum ? out.continuum + row : w.cont.data();
      for (int p = 0; p < grid::kNPix; ++p) cont[p] = 1.0f;
      std::uint32_t f = 0u;
      for (int a = 0; a < grid::kNumArms; ++a)
        f |= pipeline::stage_arm(o, b.err != nullptr, a, of, oi, om, cont, w.work.data(), &basis[a],
                                 pipeline::z_em_of(b, s));
      for (int p = 0; p < grid::kNPix; ++p) pipeline::stage_fill(p, of, oi, om);
      f |= pipeline::stage_summary(b, s, om,
                                   out.n_masked + static_cast<std::size_t>(s) * grid::kNumArms);
      out.flags[s] = f;
    }
  });
}

void lsf_degrade_cpu(int n_spec, int n_in, const double* wave, bool wave_per_spectrum,
                     const float* flux, const float* err, const double* r_in, double r_out,
                     float* flux_out, float* err_out, std::uint8_t* good_out, int threads) {
  Batch b;
  b.n_spec = n_spec;
  b.n_in = n_in;
  b.wave = wave;
  b.wave_per_spectrum = wave_per_spectrum;
  b.flux = flux;
  b.err = err;
  b.r_in = r_in;
  validate_batch(b);
  if (!(r_out > 0.0)) throw std::invalid_argument("r_out: resolving power must be positive");
  parallel_for(n_spec, threads, 16, [&](std::int64_t begin, std::int64_t end, int) {
    std::vector<std::uint8_t> good(n_in);
    std::vector<double> var(n_in), svar(n_in), edge, lnedge;
    if (!wave_per_spectrum) input_edges(wave, n_in, edge, lnedge, true);
    for (std::int64_t s64 = begin; s64 < end; ++s64) {
      const int s = static_cast<int>(s64);
      const std::size_t row = static_cast<std::size_t>(s) * n_in;
      if (wave_per_spectrum) input_edges(wave + row, n_in, edge, lnedge, true);
      for (int j = 0; j < n_in; ++j) pipeline::stage_input(b, s, j, good.data(), var.data());
      const double sigma = resample::lsf_sigma_ln(r_in ? r_in[s] : grid::kResolvingPower, r_out);
      for (int j = 0; j < n_in; ++j) {
        if (sigma > 0.0) {
          pipeline::stage_smooth(n_in, j, lnedge.data(), flux + row, var.data(), good.data(), sigma,
                                 flux_out + row, svar.data(), good_out + row);
        } else {
          flux_out[row + j] = flux[row + j];
          svar[j] = var[j];
          good_out[row + j] = good[j];
        }
        if (err_out)
          err_out[row + j] = good_out[row + j] ? static_cast<float>(std::sqrt(svar[j])) : 0.0f;
        if (!good_out[row + j]) flux_out[row + j] = std::nanf("");
      }
    }
  });
}

}  // namespace mgfast
