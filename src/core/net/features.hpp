// The network's input channels, computed from the preprocessed spectra (continuum-normalised
// flux, 1 where masked; inverse variance, 0 where masked) by one function for every path: the
// CPU engine's feed (backend_cpu.cpp), the GPU engine's input kernel (gpu_plan.hpp input_at,
// backend_gpu.cu), and mgfast.model.input_features, which training uses (training/data.py). A
// model lists its channels in model.json (input.channels); without the key it reads the flux.
//
//   flux      the flux (an FCN model's affine first layer then maps it to 1 - flux)
//   whitened  clamp((1 - flux) sqrt(ivar), -8, 8) / 4: the absorption in units of the pixel's
//             noise, so that the network sees how significant a dip is
//   log_snr   log10(1 + sqrt(ivar)) / 2: the pixel's signal-to-noise ratio (the continuum is 1),
//             so that it sees the local SNR, the arms' SNR profiles and masked pixels
//
// Both noise channels are 0 at a masked pixel (ivar 0); an ivar that is not a finite positive
// number counts as masked. Everything is float32 arithmetic that rounds the same everywhere
// (sqrt is correctly rounded; no product is fused into a sum), except log10, taken in double
// and rounded once to float32, which agrees to the bit but for values within a few double ulps
// of a float32 rounding boundary.
#pragma once

#include <cmath>

#include "hd.hpp"

namespace mgfast::features {

enum Kind : int { kFlux = 0, kWhitened = 1, kLogSnr = 2, kNumKinds = 3 };

constexpr int kMaxChannels = 4;

// The input channels of a network, in order (the first must be kFlux: the affine first layer
// acts on channel 0). Trivially copyable: passed by value to CUDA kernels.
struct Channels {
  int count = 1;
  int kind[kMaxChannels] = {kFlux, kFlux, kFlux, kFlux};

  MGFAST_HD bool flux_only() const { return count == 1 && kind[0] == kFlux; }
};

// The channels' names (mgfast.model.INPUT_CHANNELS, model.json's input.channels), by Kind.
inline const char* kind_name(int kind) {
  return kind == kFlux ? "flux" : (kind == kWhitened ? "whitened" : "log_snr");
}

// sqrt(ivar), or 0 where the pixel carries no weight.
MGFAST_HD float sqrt_ivar(float ivar) {
#if defined(__CUDA_ARCH__)
  return ivar > 0.0f && ivar < INFINITY ? sqrtf(ivar) : 0.0f;
#else
  return ivar > 0.0f && ivar < INFINITY ? std::sqrt(ivar) : 0.0f;
#endif
}

// Channel `kind` of one pixel, from its flux and its sqrt_ivar s.
MGFAST_HD float value(int kind, float flux, float s) {
  if (kind == kWhitened) {
    const float w = (1.0f - flux) * s;
    // NaN stays NaN (as NumPy's clip), so the caller's finiteness checks still see it.
    return (w < -8.0f ? -8.0f : (w > 8.0f ? 8.0f : w)) * 0.25f;
  }
  if (kind == kLogSnr) {
#if defined(__CUDA_ARCH__)
    return static_cast<float>(log10(1.0 + static_cast<double>(s))) * 0.5f;
#else
    return static_cast<float>(std::log10(1.0 + static_cast<double>(s))) * 0.5f;
#endif
  }
  return flux;
}

// Channel c of one pixel; with `affine`, the network's affine first layer x -> a x + b applied
// to channel 0 (the FCN models' 1 - flux), as the engines' input steps do.
MGFAST_HD float channel_at(const Channels& ch, int c, float flux, float ivar, bool affine = false,
                           float a = 1.0f, float b = 0.0f) {
  const float v = value(ch.kind[c], flux, ch.kind[c] == kFlux ? 0.0f : sqrt_ivar(ivar));
  return affine && c == 0 ? a * v + b : v;
}

// One spectrum's channels, channels-last (len, C) or channels-first (C, len), from its flux and
// ivar (len each; ivar null: every pixel masked), optionally the affine map on channel 0.
inline void fill(const Channels& ch, const float* flux, const float* ivar, int len,
                 bool channels_last, float* out, bool affine = false, float a = 1.0f,
                 float b = 0.0f) {
  const int nc = ch.count;
  for (int l = 0; l < len; ++l) {
    const float iv = ivar ? ivar[l] : 0.0f;
    for (int c = 0; c < nc; ++c) {
      const float v = channel_at(ch, c, flux[l], iv, affine, a, b);
      out[channels_last ? static_cast<long long>(l) * nc + c
                        : static_cast<long long>(c) * len + l] = v;
    }
  }
}

}  // namespace mgfast::features
