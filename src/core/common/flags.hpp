// Bit meanings of the per-pixel mask and the per-spectrum flags that preprocessing returns.
#pragma once

#include <cstdint>

namespace mgfast::flags {

// Per output pixel (uint8). A pixel with any bit set carries flux 1 (the continuum) and ivar 0.
constexpr std::uint8_t kPixNotCovered = 1u << 0;  // no input data at this wavelength
constexpr std::uint8_t kPixBadInput = 1u << 1;    // NaN/inf flux, error <= 0, ivar 0, mask bits
constexpr std::uint8_t kPixArmMissing = 1u << 2;  // the whole arm was dropped (too little data)
constexpr std::uint8_t kPixContinuumFailed = 1u << 3;  // continuum fit failed for this arm
// redward of where MgII can be given the quasar's redshift (set by the Detector, from z_em)
constexpr std::uint8_t kPixBeyondZem = 1u << 4;
constexpr std::uint8_t kPixSpike = 1u << 5;  // a spike far above its neighbours (cosmic ray)

// Per spectrum (uint32).
constexpr std::uint32_t kArmMissingBlue = 1u << 0;
constexpr std::uint32_t kArmMissingGreen = 1u << 1;
constexpr std::uint32_t kArmMissingRed = 1u << 2;
constexpr std::uint32_t kLowResolution = 1u << 3;    // input R below the grid's 20000
constexpr std::uint32_t kContinuumFailed = 1u << 4;  // at least one arm's continuum failed
constexpr std::uint32_t kAllMasked = 1u << 5;        // no usable pixel at all
constexpr std::uint32_t kNoErrors = 1u << 6;         // no error array given: ivar is 0 throughout

constexpr std::uint32_t arm_missing(int arm) { return kArmMissingBlue << arm; }

}  // namespace mgfast::flags
