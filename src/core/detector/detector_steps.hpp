// The steps of mgfast.Detector.detect that are NumPy code in Python, ported to C++ for the C++
// Detector with the same arithmetic (float32 where NumPy computes in float32, float64
// elsewhere, the same medians and roundings), so that both give the same bits. Each names the
// Python function it mirrors.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "mgfast/detector.hpp"

namespace mgfast::steps {

// preprocess._check_coverage / wave_problem: throws std::invalid_argument when wavelengths
// wave[0] ... wave[n-1] of some spectrum miss every arm, or are not finite and increasing.
void check_wave(const double* wave, std::int64_t n_rows, int n_pix);

// preprocess._is_grid: the wavelengths are the grid's (within 1e-9 relative).
bool is_grid(const double* wave, int n_pix);

// preprocess._unit_exponents: per spectrum, the power of two k by which flux and errors are
// divided before the float32 steps (0 where the typical error, or |flux|, lies within
// 2^±10). err_is_ivar: e holds inverse variances.
std::vector<int> unit_exponents(const float* f, const float* e, bool err_is_ivar,
                                const std::uint32_t* m, std::uint32_t bad_bits, std::int64_t n,
                                int n_pix);

// preprocess._times_power_of_two, in place on row i (n_pix values): x * 2^k[i].
void times_power_of_two(float* x, std::int64_t n, int n_pix, const std::vector<int>& k, int sign);

// detector._mask_beyond_z_em, in place on preprocessed spectra (n, kNPix); rewrites n_masked.
void mask_beyond_z_em(const double* z_em, std::int64_t n, float* flux, float* ivar,
                      std::uint8_t* pixmask, std::int32_t* n_masked);

// ew.scatter_ivar: ivar with the scatter's estimate for the spectra without errors (copied).
std::vector<float> scatter_ivar(const float* flux, const float* ivar, const std::uint8_t* pixmask,
                                std::int64_t n);

// quality.masked_by_reason of one spectrum: the fraction of its pixels masked for each reason,
// each pixel under its lowest mask bit (kMaskReasons of them, the pixel-mask bits in order).
std::array<float, kMaskReasons> masked_by_reason(const std::uint8_t* pixmask_row);

// detector._quality: LOW_SNR, NEAR_EDGE and NEAR_MASKED bits of spectrum i.
std::uint32_t quality(float snr, const std::uint8_t* pixmask_row, double lambda2796);

// detector._z_em_flags: IN_FOREST and ASSOCIATED bits of λ2796 given z_em.
std::uint32_t z_em_flags(double lambda2796, double z_em);

// absorbers.calibrate: score through the curve (x, y) as numpy.interp computes it (float64,
// the same slopes and special cases), then rounded to float32; n == 0: the score itself.
float calibrate(float score, const double* x, const double* y, std::size_t n);

// detector._check_normalised (without its warning): NOT_NORMALISED for a row given as
// normalised that does not look it.
std::uint32_t check_normalised(const float* flux_row, const std::uint8_t* pixmask_row);

}  // namespace mgfast::steps
