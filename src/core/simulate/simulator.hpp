// The simulator's CPU driver (the physics is in simulate.hpp).
#pragma once

#include <cstdint>

#include "simulate.hpp"

namespace mgfast {

// Checks a configuration; throws std::invalid_argument naming the parameter and its allowed range.
void validate_config(const sim::Config& cfg);

// Simulates spectra start .. start + n - 1 of the set (cfg.seed): flux and err (n x kNPix), the
// noiseless transmission when clean is not null, and the truth per spectrum.
void simulate_cpu(const sim::Config& cfg, std::uint64_t start, int n, float* flux, float* err,
                  float* clean, sim::Sightline* truth, int threads);

}  // namespace mgfast
