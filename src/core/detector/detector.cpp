// The C++ Detector (include/mgfast/detector.hpp): mgfast.Detector.detect's single-absorber path,
// step by step in the same order, with the same core functions where Python calls the core
// (preprocess_cpu, median_snr_cpu, the engine, measure_ew_cpu) and detector_steps.hpp where
// Python computes in NumPy.
#include "mgfast/detector.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <utility>
#include <vector>

#include "backend_cpu.hpp"
#include "detector_steps.hpp"
#include "equivalent_width.hpp"
#include "flags.hpp"
#include "grid.hpp"
#include "model_loader.hpp"
#include "preprocess.hpp"

namespace mgfast {

ModelInfo read_model_info(const std::string& model_dir) {
  LoadedModel m = load_model_dir(model_dir);
  return m.info;
}

namespace {

std::unique_ptr<CpuBackend> cpu_engine(LoadedModel& m, const EngineOptions& o) {
  if (o.precision == Precision::kFp16)
    throw std::invalid_argument("precision: fp16 is the GPU engine's; the CPU runs fp32 or bf16");
  if (o.threads < 0 || o.threads > 4096)
    throw std::invalid_argument("threads: expected an integer in [0, 4096]");
  if (o.batch_size < 1 || o.batch_size > 4096)
    throw std::invalid_argument("batch_size: expected an integer in [1, 4096]");
  return std::make_unique<CpuBackend>(m.network, o.threads, o.batch_size, true,
                                      o.precision == Precision::kBf16);
}

constexpr double kMgII2796 = 2796.3543;  // atomic.hpp's kMgII2796.lambda (mgfast.atomic)
constexpr double kHalfMin = 2.0;         // EwOptions().half_min: the second EW pass (mgfast.ew)

}  // namespace

std::unique_ptr<Engine> make_cpu_engine(const std::string& model_dir, const EngineOptions& o) {
  LoadedModel m = load_model_dir(model_dir);
  return cpu_engine(m, o);
}

struct Detector::Impl {
  ModelInfo info;
  DetectorOptions opt;
  double threshold = 0.0;
  std::unique_ptr<Engine> engine;

  // The model read, its options checked; the engine is the caller's to set.
  LoadedModel load(const std::string& model_dir, const DetectorOptions& options);
  void detect_chunk(const Spectra& s, std::vector<Detection>& rows);
};

LoadedModel Detector::Impl::load(const std::string& model_dir, const DetectorOptions& options) {
  opt = options;
  if (options.chunk_size < 1) throw std::invalid_argument("chunk_size: must be at least 1");
  if (!std::isnan(options.threshold) && !(options.threshold >= 0.0 && options.threshold <= 1.0))
    throw std::invalid_argument("threshold: a probability threshold must lie in [0, 1]");
  LoadedModel loaded = load_model_dir(model_dir);
  if (loaded.network.map_output())
    throw std::invalid_argument(
        "model " + model_dir + ": a multi-absorber model (" + loaded.info.architecture +
        "); the C++ Detector decodes single-absorber models only so far: use the Python API "
        "(mgfast.Detector) for it, or run its network with make_cpu_engine");
  info = loaded.info;
  threshold = std::isnan(options.threshold) ? info.thresholds.at("default") : options.threshold;
  return loaded;
}

Detector::Detector(const std::string& model_dir, const DetectorOptions& options)
    : impl_(std::make_unique<Impl>()) {
  LoadedModel loaded = impl_->load(model_dir, options);
  impl_->engine =
      cpu_engine(loaded, EngineOptions{options.threads, options.batch_size, options.precision});
}

Detector::Detector(const std::string& model_dir, std::unique_ptr<Engine> engine,
                   const DetectorOptions& options)
    : impl_(std::make_unique<Impl>()) {
  impl_->load(model_dir, options);
  if (!engine) throw std::invalid_argument("engine: not given");
  if (engine->n_in() != impl_->info.n_pix || engine->map_output() ||
      engine->input_features() != impl_->info.input_features)
    throw std::invalid_argument("engine: its inputs or outputs are not those of model " +
                                model_dir + " (" + impl_->info.architecture + ")");
  impl_->engine = std::move(engine);
}

Detector::~Detector() = default;
Detector::Detector(Detector&&) noexcept = default;
Detector& Detector::operator=(Detector&&) noexcept = default;

const ModelInfo& Detector::model() const { return impl_->info; }
double Detector::threshold() const { return impl_->threshold; }
Engine& Detector::engine() { return *impl_->engine; }

Detections Detector::detect(const Spectra& s) {
  if (!s.flux) throw std::invalid_argument("flux: not given");
  if (s.n < 1 || s.n_pix < 1) throw std::invalid_argument("flux: empty array");
  if (!s.wave && s.n_pix != grid::kNPix)
    throw std::invalid_argument("flux: " + std::to_string(s.n_pix) +
                                " pixels but no wave given; spectra off the grid need wave (the "
                                "grid has 6315 pixels)");
  if (s.wave) steps::check_wave(s.wave, s.wave_per_spectrum ? s.n : 1, s.n_pix);
  if (s.err && s.ivar) throw std::invalid_argument("err, ivar: give one or the other, not both");
  for (std::int64_t i = 0; s.resolution && i < s.n; ++i)
    if (!(std::isfinite(s.resolution[i]) && s.resolution[i] > 0))
      throw std::invalid_argument("resolution: resolving power must be finite and positive");
  for (std::int64_t i = 0; s.z_em && i < s.n; ++i)
    if (std::isinf(s.z_em[i]) || s.z_em[i] < 0)
      throw std::invalid_argument("z_em: must be >= 0 or NaN (unknown)");

  Detections out;
  out.threshold = impl_->threshold;
  out.model = impl_->info.path;
  out.model_sha256 = impl_->info.sha256;
  out.rows.reserve(static_cast<std::size_t>(s.n));
  // chunk_size at a time, as Python's Detector: the engine then sees the same calls.
  for (std::int64_t start = 0; start < s.n; start += impl_->opt.chunk_size) {
    Spectra c = s;
    c.n = std::min<std::int64_t>(impl_->opt.chunk_size, s.n - start);
    const std::int64_t off = start * s.n_pix;
    c.flux += off;
    if (c.wave && c.wave_per_spectrum) c.wave += off;
    if (c.err) c.err += off;
    if (c.ivar) c.ivar += off;
    if (c.mask) c.mask += off;
    if (c.resolution) c.resolution += start;
    if (c.z_em) c.z_em += start;
    impl_->detect_chunk(c, out.rows);
  }
  return out;
}

void Detector::Impl::detect_chunk(const Spectra& s, std::vector<Detection>& rows) {
  const std::int64_t n = s.n;
  const int n_in = s.n_pix;
  constexpr int kN = grid::kNPix;
  const std::size_t in_size = std::size_t(n) * n_in, size = std::size_t(n) * kN;

  // mgfast.preprocess: unit scaling of unnormalised spectra, then the core's pipeline.
  std::vector<float> f(s.flux, s.flux + in_size), e;
  const float* err = s.err ? s.err : s.ivar;
  const bool is_ivar = s.ivar != nullptr;
  if (err) e.assign(err, err + in_size);
  if (!s.normalised) {
    const std::vector<int> k = steps::unit_exponents(f.data(), err ? e.data() : nullptr, is_ivar,
                                                     s.mask, s.bad_bits, n, n_in);
    if (std::any_of(k.begin(), k.end(), [](int v) { return v != 0; })) {
      steps::times_power_of_two(f.data(), n, n_in, k, -1);
      if (err) steps::times_power_of_two(e.data(), n, n_in, k, is_ivar ? 2 : -1);
    }
  }
  bool fine = false;  // a resolution above the grid's is degraded: not the fast path
  for (std::int64_t i = 0; s.resolution && i < n; ++i)
    fine = fine || s.resolution[i] > grid::kResolvingPower;
  bool on_grid = !s.wave;
  if (s.wave && !fine) {
    on_grid = true;
    for (std::int64_t r = 0; r < (s.wave_per_spectrum ? n : 1) && on_grid; ++r)
      on_grid = steps::is_grid(s.wave + r * n_in, n_in);
  }
  pipeline::Batch b;
  b.n_spec = static_cast<int>(n);
  b.n_in = n_in;
  b.on_grid = on_grid;
  if (!on_grid) {
    b.wave = s.wave;
    b.wave_per_spectrum = s.wave_per_spectrum;
  }
  b.flux = f.data();
  b.err = err ? e.data() : nullptr;
  b.err_is_ivar = is_ivar;
  b.mask = s.mask;
  b.bad_bits = s.mask ? s.bad_bits : 0xFFFFFFFFu;
  b.r_in = s.resolution;
  b.z_em = s.z_em;      // the continuum fit's Lyman-alpha forest (normalised = false)
  pipeline::Options o;  // mgfast.preprocess's defaults (ContinuumOptions())
  o.normalise = !s.normalised;
  o.min_pixel_good = 0.5;
  o.min_arm_good = 0.5;
  o.continuum.knot_spacing = 40.0;
  o.continuum.penalty = 1.0;
  o.continuum.clip_low = 2.5;
  o.continuum.clip_high = 3.0;
  o.continuum.grow = 4;
  o.continuum.max_iter = 15;
  o.continuum.sigma_floor = 0.01;
  o.continuum.spike_sigma = 10.0;
  o.continuum.forest_penalty = 30.0;
  std::vector<float> flux(size), ivar(size);
  std::vector<std::uint8_t> pixmask(size);
  std::vector<std::uint32_t> flags(static_cast<std::size_t>(n));
  std::vector<std::int32_t> n_masked(std::size_t(n) * grid::kNumArms);
  pipeline::Output po;
  po.flux = flux.data();
  po.ivar = ivar.data();
  po.pixmask = pixmask.data();
  po.flags = flags.data();
  po.n_masked = n_masked.data();
  preprocess_cpu(b, o, po, opt.threads);

  if (s.z_em)
    steps::mask_beyond_z_em(s.z_em, n, flux.data(), ivar.data(), pixmask.data(), n_masked.data());
  std::vector<float> snr(static_cast<std::size_t>(n));
  median_snr_cpu(ivar.data(), n, kN, snr.data(), opt.threads);
  const std::vector<float> ivar_ew =
      steps::scatter_ivar(flux.data(), ivar.data(), pixmask.data(), n);

  // The network: (probability, λ2796) per spectrum from the heatmap head.
  std::vector<float> prob(static_cast<std::size_t>(n)), lam32(static_cast<std::size_t>(n));
  const bool reads_noise = engine->in_channels() > 1;
  engine->infer(EngineBatch{flux.data(), reads_noise ? ivar_ew.data() : nullptr, n},
                EngineOutput{prob.data(), lam32.data(), nullptr, nullptr});

  const float thr = static_cast<float>(threshold);  // NumPy compares float32 scores in float32
  const std::size_t first = rows.size();
  std::vector<std::int64_t> ew_rows;
  std::vector<double> ew_z;
  for (std::int64_t i = 0; i < n; ++i) {
    Detection d;
    const bool empty = (flags[i] & flags::kAllMasked) != 0;
    const float p = steps::calibrate(prob[i], info.calibration_x.data(), info.calibration_y.data(),
                                     info.calibration_x.size());
    d.probability = empty ? 0.0f : p;
    d.detected = d.probability >= thr;
    const double lam = lam32[i];
    d.lambda2796 = std::isfinite(grid::pixel_of_wavelength(lam)) && !empty ? lam : NAN;
    d.z_abs = d.lambda2796 / kMgII2796 - 1.0;
    std::uint32_t fl = flags[i] | steps::quality(snr[i], pixmask.data() + i * kN, d.lambda2796);
    if (s.z_em) {
      d.z_em = s.z_em[i];
      fl |= steps::z_em_flags(d.lambda2796, d.z_em);
    }
    if (s.normalised) fl |= steps::check_normalised(flux.data() + i * kN, pixmask.data() + i * kN);
    d.flags = fl;
    std::int64_t masked = 0;
    for (int a = 0; a < grid::kNumArms; ++a) masked += n_masked[i * grid::kNumArms + a];
    d.masked_fraction = static_cast<float>(double(masked) / double(kN));
    d.masked_by = steps::masked_by_reason(pixmask.data() + i * kN);
    d.snr = snr[i];
    if (d.detected && std::isfinite(d.lambda2796)) {
      ew_rows.push_back(i);
      ew_z.push_back(d.lambda2796 / kMgII2796 - 1.0);
    }
    rows.push_back(d);
  }

  // mgfast.ew.measure without a guess: the smallest window first, broader systems again.
  if (ew_rows.empty()) return;
  const std::size_t na = ew_rows.size();
  const EwOptions ew_opt;
  std::vector<double> guess(na, NAN), ew(2 * na), sig(2 * na);
  measure_ew_cpu(flux.data(), ivar_ew.data(), n, kN, ew_rows.data(), ew_z.data(), guess.data(),
                 static_cast<std::int64_t>(na), ew_opt, ew.data(), sig.data(), opt.threads);
  std::vector<std::size_t> again;
  for (std::size_t j = 0; j < na; ++j)
    if (ew[2 * j] > kHalfMin) again.push_back(j);
  if (!again.empty()) {
    std::vector<std::int64_t> r2;
    std::vector<double> z2, g2, ew2(2 * again.size()), sig2(2 * again.size());
    for (std::size_t j : again) {
      r2.push_back(ew_rows[j]);
      z2.push_back(ew_z[j]);
      g2.push_back(ew[2 * j]);
    }
    measure_ew_cpu(flux.data(), ivar_ew.data(), n, kN, r2.data(), z2.data(), g2.data(),
                   static_cast<std::int64_t>(again.size()), ew_opt, ew2.data(), sig2.data(),
                   opt.threads);
    for (std::size_t q = 0; q < again.size(); ++q)
      for (int c = 0; c < 2; ++c) {
        ew[2 * again[q] + c] = ew2[2 * q + c];
        sig[2 * again[q] + c] = sig2[2 * q + c];
      }
  }
  for (std::size_t j = 0; j < na; ++j) {
    Detection& d = rows[first + static_cast<std::size_t>(ew_rows[j])];
    d.ew2796 = static_cast<float>(ew[2 * j]);
    d.ew2796_err = static_cast<float>(sig[2 * j]);
    d.ew2803 = static_cast<float>(ew[2 * j + 1]);
    d.ew2803_err = static_cast<float>(sig[2 * j + 1]);
  }
}

}  // namespace mgfast
