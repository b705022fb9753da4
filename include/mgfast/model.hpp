// A model directory (model.onnx + model.json) as the C++ API sees it: its metadata, and an engine
// built from it. Self-contained; installed with libmgfast (docs/cpp_api.md).
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "mgfast/engine.hpp"

namespace mgfast {

// libmgfast's version (mgfast.__version__ of the wheel it came with).
std::string version();

struct ModelInfo {
  std::string path;          // the directory
  std::string architecture;  // model.json's: mgfast_fcn, mgfast_multi, mgfast_dual
  std::string sha256;        // of model.onnx, checked against model.json's onnx_sha256
  int n_pix = 0;             // the grid's pixels (checked against mgfast's grid)
  bool trained = false;
  std::vector<std::string> input_features;   // "flux" first, then "whitened", "log_snr" if read
  std::map<std::string, double> thresholds;  // model.json's thresholds ("default" always there)
  bool map_output = false;                   // a multi-absorber model (per-cell maps)
  bool has_calibration = false;
  // model.json's calibration curve (x, y): the per-spectrum probability goes through it (empty:
  // none)
  std::vector<double> calibration_x, calibration_y;
};

// Reads and checks a model directory as mgfast.model.load_model does (format, version,
// architecture, grid, input channels and normalisation, thresholds, SHA-256, the graph's names
// and shapes). Throws std::runtime_error for a missing directory or file and
// std::invalid_argument for a model that is corrupt, for another grid, or of an architecture
// the C++ loader does not read (bycycle2023, the paper network: Python only for now).
ModelInfo read_model_info(const std::string& model_dir);

struct EngineOptions {
  int threads = 0;                         // worker threads (0: all hardware threads)
  int batch_size = 16;                     // spectra per chunk
  Precision precision = Precision::kFp32;  // kFp32, or kBf16 on CPUs with AVX512-BF16/AMX
};

// The model's network on the CPU (oneDNN): the same engine as mgfast.engine.CpuBackend, with
// the same numbers. Throws as read_model_info, and std::runtime_error when libmgfast was built
// without oneDNN. (The GPU engine, mgfast.engine.GpuBackend, is not part of libmgfast yet.)
std::unique_ptr<Engine> make_cpu_engine(const std::string& model_dir,
                                        const EngineOptions& options = {});

}  // namespace mgfast
