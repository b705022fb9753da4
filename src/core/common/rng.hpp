// Counter-based random numbers (Philox4x32-10, Salmon et al. 2011) shared by CPU and CUDA: a
// (seed, spectrum index, stream, counter) tuple always gives the same numbers, whatever the batch
// size, thread count, device or order of evaluation.
#pragma once

#include <cmath>
#include <cstdint>

#include "fastmath.hpp"
#include "hd.hpp"

namespace mgfast::rng {

struct U4 {
  std::uint32_t v[4];
};

MGFAST_HD std::uint32_t mulhilo(std::uint32_t a, std::uint32_t b, std::uint32_t* hi) {
  const std::uint64_t p = static_cast<std::uint64_t>(a) * b;
  *hi = static_cast<std::uint32_t>(p >> 32);
  return static_cast<std::uint32_t>(p);
}

// Philox4x32 with 10 rounds on counter c and key k.
MGFAST_HD U4 philox(U4 c, std::uint32_t k0, std::uint32_t k1) {
  for (int r = 0; r < 10; ++r) {
    std::uint32_t hi0, hi1;
    const std::uint32_t lo0 = mulhilo(0xD2511F53u, c.v[0], &hi0);
    const std::uint32_t lo1 = mulhilo(0xCD9E8D57u, c.v[2], &hi1);
    c = U4{{hi1 ^ c.v[1] ^ k0, lo1, hi0 ^ c.v[3] ^ k1, lo0}};
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return c;
}

// Uniform in (0, 1), never 0 or 1 (safe for log).
MGFAST_HD double to_unit(std::uint32_t x) { return (x + 0.5) * (1.0 / 4294967296.0); }

// A generator for one (seed, index, stream): draws come from successive counters.
struct Stream {
  std::uint32_t k0, k1, idx_lo, idx_hi, stream, counter;
  U4 buf;
  int left;

  MGFAST_HD Stream(std::uint64_t seed, std::uint64_t index, std::uint32_t stream_id,
                   std::uint32_t start = 0)
      : k0(static_cast<std::uint32_t>(seed)),
        k1(static_cast<std::uint32_t>(seed >> 32)),
        idx_lo(static_cast<std::uint32_t>(index)),
        idx_hi(static_cast<std::uint32_t>(index >> 32)),
        stream(stream_id),
        counter(start),
        buf{{0, 0, 0, 0}},
        left(0) {}

  MGFAST_HD std::uint32_t next_u32() {
    if (left == 0) {
      buf = philox(U4{{idx_lo, idx_hi, stream, counter++}}, k0, k1);
      left = 4;
    }
    return buf.v[4 - left--];
  }
  MGFAST_HD double uniform() { return to_unit(next_u32()); }
  MGFAST_HD double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  // Box-Muller; one normal per call (the partner is dropped, keeping draws position-independent).
  MGFAST_HD double normal() {
    const double u1 = uniform(), u2 = uniform();
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
  }
  MGFAST_HD int integer(int n) {  // uniform in [0, n)
    int k = static_cast<int>(uniform() * n);
    return k < n ? k : n - 1;
  }
  MGFAST_HD int poisson(double mean) {  // Knuth's method: means here are small (< 20)
    const double limit = exp(-mean);
    double p = 1.0;
    int k = -1;
    do {
      ++k;
      p *= uniform();
    } while (p > limit && k < 1000);
    return k;
  }
};

// Two standard normals from one Philox call at (index, stream, counter): for per-pixel noise,
// where pixel p uses counter p and so does not depend on any other draw.
MGFAST_HD double normal_at(std::uint64_t seed, std::uint64_t index, std::uint32_t stream,
                           std::uint32_t counter) {
  const U4 r = philox(U4{{static_cast<std::uint32_t>(index),
                          static_cast<std::uint32_t>(index >> 32), stream, counter}},
                      static_cast<std::uint32_t>(seed), static_cast<std::uint32_t>(seed >> 32));
  const double u1 = to_unit(r.v[0]), u2 = to_unit(r.v[1]);
  return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

// The two standard normals of pixels 2k and 2k + 1: one Philox call at counter k, one Box-Muller
// transform (cosine half for the even pixel, sine half for the odd), so each pixel costs half a
// call and depends on nothing but (seed, index, stream, pixel). Single precision and branch-free
// (fastmath.hpp), so that the CPU computes many pairs at once; the radius's uniform keeps all 32
// bits (from 2^-33: normals reach 6.8σ), the angle's 24.
MGFAST_HD void normal_pair(std::uint64_t seed, std::uint64_t index, std::uint32_t stream, int k,
                           float* z0, float* z1) {
  const U4 r =
      philox(U4{{static_cast<std::uint32_t>(index), static_cast<std::uint32_t>(index >> 32), stream,
                 static_cast<std::uint32_t>(k)}},
             static_cast<std::uint32_t>(seed), static_cast<std::uint32_t>(seed >> 32));
  const float u1 = (static_cast<float>(static_cast<std::int32_t>(r.v[0] >> 8)) * 256.0f +
                    (static_cast<float>(static_cast<std::int32_t>(r.v[0] & 255u)) + 0.5f)) *
                   2.3283064365386963e-10f;  // (x + 1/2) 2^-32, in (0, 1]
  const float u2 = static_cast<float>(static_cast<std::int32_t>(r.v[1] >> 8)) * 5.9604645e-8f;
  const float radius = sqrtf(-2.0f * fastmath::log(u1));
  float c, s;
  fastmath::sincos_2pi(u2, &c, &s);
  *z0 = radius * c;
  *z1 = radius * s;
}

}  // namespace mgfast::rng
