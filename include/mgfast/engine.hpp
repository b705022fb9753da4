// The one engine contract (issue 18): what every inference engine of mgfast offers, whichever
// library runs it (oneDNN on the CPU, cuDNN and cuBLAS on a GPU). A pipeline holds an Engine and
// does not care which one it is. Self-contained: this header needs nothing but the standard
// library, and is installed with libmgfast (docs/cpp_api.md).
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace mgfast {

// Activation shape of one spectrum: channels × length (length 1 for two numbers per spectrum).
struct Shape {
  int channels = 0;
  int length = 0;
};

enum class Precision { kFp32, kBf16, kFp16 };

inline const char* precision_name(Precision p) {
  return p == Precision::kFp32 ? "fp32" : (p == Precision::kBf16 ? "bf16" : "fp16");
}

// One call's input: n spectra of n_in() pixels each, row-major host memory. ivar (n × n_in,
// may be null) is read by an engine whose input features include the noise (input_features()
// beyond "flux"): null means no errors known, the noise features 0.
struct EngineBatch {
  const float* flux = nullptr;
  const float* ivar = nullptr;
  std::int64_t n = 0;
};

// Where one call's results go, host memory. An engine with two outputs per spectrum
// (map_output() false) writes probability[n] and lambda2796[n]; one that returns a map writes
// map (n × output_shape().length × output_shape().channels, channels-last) and, when it has a
// summary head and summary is not null, summary (n × 2: probability, λ2796).
struct EngineOutput {
  float* probability = nullptr;
  float* lambda2796 = nullptr;
  float* map = nullptr;
  float* summary = nullptr;
};

class Engine {
 public:
  virtual ~Engine() = default;

  // Inputs: pixels per spectrum, and the features the network reads, computed by the engine
  // from the flux and ivar it is given ("flux", "whitened", "log_snr"; docs/engine.md).
  virtual int n_in() const = 0;
  virtual std::vector<std::string> input_features() const = 0;
  int in_channels() const { return static_cast<int>(input_features().size()); }

  // Outputs: (probability, λ2796) per spectrum, or a map (and with a summary head both).
  virtual bool map_output() const = 0;
  virtual bool has_summary() const = 0;
  virtual Shape output_shape() const = 0;  // the map's (channels, length); (2, 1) for two numbers

  virtual Precision precision() const = 0;
  virtual std::string device() const = 0;  // "cpu", "cuda:0", ...
  virtual int batch_size() const = 0;
  virtual double flops_per_sample() const = 0;

  // Runs the network on a batch. Calls on one engine are serialised. Throws std::logic_error
  // when `out` lacks what this engine writes (a map engine given only probability, say).
  virtual void infer(const EngineBatch& batch, const EngineOutput& out) = 0;

  // The same, spelt as the engines' calls have always been.
  void infer(const float* flux, std::int64_t n, float* probability, float* lambda2796,
             const float* ivar = nullptr) {
    if (map_output()) throw_wrong_call(true);
    infer(EngineBatch{flux, ivar, n}, EngineOutput{probability, lambda2796, nullptr, nullptr});
  }
  void infer_map(const float* flux, std::int64_t n, float* map, float* summary = nullptr,
                 const float* ivar = nullptr) {
    if (!map_output()) throw_wrong_call(false);
    infer(EngineBatch{flux, ivar, n}, EngineOutput{nullptr, nullptr, map, summary});
  }

 private:
  static void throw_wrong_call(bool map) {
    throw std::logic_error(map ? "this network returns a map: call infer_map"
                               : "this network returns probability and λ2796: call infer");
  }
};

}  // namespace mgfast
