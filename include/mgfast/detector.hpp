// mgfast's C++ API for pipelines: a Detector that loads a model directory by path and finds MgII
// absorbers in spectra, returning plain structs. It computes what the Python
// mgfast.Detector(model=path).detect(flux, wave, err, z_em=...) computes for a single-absorber
// model (the shipped "default", architecture mgfast_fcn), to the bit on the same machine
// (tests/test_cpp_api.py): preprocessing onto the 4MOST grid (the same C++ code), the network
// (the same oneDNN engine), the heatmap head's decoding, the threshold, the EWs measured on the
// spectrum, and the quality and z_em flags. docs/cpp_api.md has an example.
//
// Not (yet) in C++ — use the Python API for these:
//  - multi-absorber models ("multi": mgfast_multi, mgfast_dual): their per-absorber decoding,
//    calibration and EW combination (mgfast.absorbers) are Python; the constructor refuses them
//    (the engine itself runs them: make_cpu_engine, Engine::infer_map);
//  - the paper network (bycycle2023) and the matched filter (method="matched-filter");
//  - the GPU engine (backend="cuda") and spectra already on a GPU;
//  - the NormalisationWarning: NOT_NORMALISED is flagged, nothing is printed;
//  - reading spectrum files (mgfast.io), catalogues and their writers (mgfast.results).
#pragma once

#include <array>
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "mgfast/engine.hpp"
#include "mgfast/model.hpp"

namespace mgfast {

constexpr int kGridPixels = 6315;  // mgfast.grid.N_PIX

// Bits of Detection::flags (mgfast.SpectrumFlag in the low 16, mgfast.DetectionFlag above).
namespace flag {
constexpr std::uint32_t kArmMissingBlue = 1u << 0;
constexpr std::uint32_t kArmMissingGreen = 1u << 1;
constexpr std::uint32_t kArmMissingRed = 1u << 2;
constexpr std::uint32_t kLowResolution = 1u << 3;
constexpr std::uint32_t kContinuumFailed = 1u << 4;
constexpr std::uint32_t kAllMasked = 1u << 5;
constexpr std::uint32_t kNoErrors = 1u << 6;
constexpr std::uint32_t kLowSnr = 1u << 16;
constexpr std::uint32_t kNearEdge = 1u << 17;
constexpr std::uint32_t kNearMasked = 1u << 18;
constexpr std::uint32_t kNotNormalised = 1u << 19;
constexpr std::uint32_t kInForest = 1u << 20;
constexpr std::uint32_t kAssociated = 1u << 21;
}  // namespace flag

// Why pixels were masked, in the order of Detection::masked_by (mgfast.flags.MASK_REASONS, the
// catalogue's masked_<reason> columns): the pixel-mask bits, lowest first.
constexpr int kMaskReasons = 6;
constexpr const char* kMaskReasonNames[kMaskReasons] = {
    "not_covered", "bad_input", "arm_missing", "continuum_failed", "beyond_zem", "spike"};

// n spectra of n_pix pixels each, row-major host memory; only flux is required. Mirrors the
// arguments of mgfast.Detector.detect.
struct Spectra {
  std::int64_t n = 0;
  int n_pix = kGridPixels;
  const float* flux = nullptr;          // (n, n_pix)
  const double* wave = nullptr;         // vacuum Å, increasing: (n_pix,), or (n, n_pix) with
  bool wave_per_spectrum = false;       //   wave_per_spectrum; null: the spectra are on the grid
  const float* err = nullptr;           // (n, n_pix) 1-sigma errors, or
  const float* ivar = nullptr;          // (n, n_pix) inverse variances (not both)
  const std::uint32_t* mask = nullptr;  // (n, n_pix) quality bits; bad where mask & bad_bits
  std::uint32_t bad_bits = 0xFFFFFFFFu;
  const double* resolution = nullptr;  // (n,) resolving power of the input; null: 20000
  const double* z_em = nullptr;        // (n,) the quasars' redshifts, NaN where unknown
  bool normalised = true;              // false: fit and divide a continuum per arm
};

// One row per spectrum, the columns of mgfast's catalogues (mgfast.results.Detections.columns).
struct Detection {
  float probability = 0.0f;  // calibrated probability of an absorber (0 for ALL_MASKED)
  bool detected = false;     // probability >= threshold
  double lambda2796 = NAN;   // observed λ2796, Å; NaN where it does not point into the arms
  double z_abs = NAN;        // lambda2796 / 2796.3543 - 1
  double z_em = NAN;         // as given (NaN: unknown)
  // Rest EWs (Å) of the doublet measured on the spectrum at lambda2796 where detected; NaN
  // elsewhere and where a window is not measurable.
  float ew2796 = NAN, ew2796_err = NAN, ew2803 = NAN, ew2803_err = NAN;
  float snr = NAN;               // median SNR per usable pixel; NaN without errors
  std::uint32_t flags = 0;       // flag:: bits
  float masked_fraction = 0.0f;  // of the grid's pixels
  // masked_fraction by reason (kMaskReasonNames), each masked pixel under its first reason (its
  // lowest mask bit): the entries sum to masked_fraction.
  std::array<float, kMaskReasons> masked_by{};
};

struct Detections {
  std::vector<Detection> rows;  // in input order
  double threshold = 0.0;
  std::string method = "network";
  std::string model;         // the model directory
  std::string model_sha256;  // of its model.onnx
};

struct DetectorOptions {
  int threads = 0;      // CPU threads (0: all)
  int batch_size = 16;  // spectra per engine chunk (Python's default on the CPU)
  Precision precision = Precision::kFp32;
  double threshold = NAN;  // NaN: the model's thresholds.default
  int chunk_size = 2048;   // spectra per internal pass (Python's Detector(chunk_size=...))
};

class Detector {
 public:
  // Loads the model directory (model.onnx + model.json): std::runtime_error when it is missing,
  // std::invalid_argument when it is corrupt, for another grid, a multi-absorber model, or the
  // options are out of range.
  explicit Detector(const std::string& model_dir, const DetectorOptions& options = {});
  // The same with an engine of the caller's (any mgfast::Engine running this model's network:
  // make_cpu_engine's, or one of the pipeline's own); std::invalid_argument when its inputs or
  // outputs are not the model's. options.threads still sets the CPU steps' threads; batch_size
  // and precision are the engine's.
  Detector(const std::string& model_dir, std::unique_ptr<Engine> engine,
           const DetectorOptions& options = {});
  ~Detector();
  Detector(Detector&&) noexcept;
  Detector& operator=(Detector&&) noexcept;

  // Detects MgII in the spectra: one row per spectrum, in order. A spectrum without a usable
  // pixel is not an error (its row has probability 0, NaN λ2796 and flag::kAllMasked).
  // std::invalid_argument for arguments Python's detect refuses (shapes, wavelengths that are
  // not increasing or miss every arm, err and ivar both, z_em < 0 or infinite, ...).
  Detections detect(const Spectra& spectra);

  const ModelInfo& model() const;
  double threshold() const;
  Engine& engine();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mgfast
