// The C++ Detector's contract on the shipped models: what it refuses, and the row of a spectrum
// without a usable pixel. Its numbers are checked against Python's in tests/test_cpp_api.py.
#include <gtest/gtest.h>

#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "backend_cpu.hpp"
#include "detector_steps.hpp"
#include "grid.hpp"
#include "mgfast/detector.hpp"

namespace mgfast {
namespace {

const std::string kModels = std::string(MGFAST_SOURCE_DIR) + "/python/mgfast/models/";

class DetectorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!onednn_available()) GTEST_SKIP() << "built without oneDNN: no CPU engine";
  }
};

TEST_F(DetectorTest, RefusesBadOptionsAndModels) {
  DetectorOptions o;
  o.threshold = 1.5;
  EXPECT_THROW(Detector(kModels + "default", o), std::invalid_argument);
  EXPECT_THROW(Detector(kModels + "multi"), std::invalid_argument);  // multi-absorber: Python
  EXPECT_THROW(Detector(kModels + "none-such"), std::runtime_error);
}

TEST_F(DetectorTest, RefusesWhatPythonsDetectRefuses) {
  DetectorOptions o;
  o.threads = 1;
  Detector det(kModels + "default", o);
  EXPECT_EQ(det.engine().device(), "cpu");
  EXPECT_EQ(det.engine().input_features().front(), "flux");
  EXPECT_EQ(det.threshold(), det.model().thresholds.at("default"));
  const int n = 100;
  std::vector<float> flux(n, 1.0f), err(n, 0.1f);
  std::vector<double> wave(n);
  for (int j = 0; j < n; ++j) wave[j] = 520.0 + j * 0.01;  // nm: 5200-5210 Å, in the green arm
  Spectra s;
  s.n = 1;
  s.n_pix = n;
  s.flux = flux.data();
  EXPECT_THROW(det.detect(s), std::invalid_argument);  // off the grid without wave
  s.wave = wave.data();
  try {
    det.detect(s);
    ADD_FAILURE() << "wavelengths in nm were accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("looks like nm"), std::string::npos) << e.what();
  }
  for (int j = 0; j < n; ++j) wave[j] = 6200.0 - j * 0.1;  // decreasing
  EXPECT_THROW(det.detect(s), std::invalid_argument);
  for (int j = 0; j < n; ++j) wave[j] = 6200.0 + j * 0.1;
  s.err = err.data();
  s.ivar = err.data();
  EXPECT_THROW(det.detect(s), std::invalid_argument);  // err and ivar
  s.ivar = nullptr;
  const double z_em = -0.5;
  s.z_em = &z_em;
  EXPECT_THROW(det.detect(s), std::invalid_argument);
  s.z_em = nullptr;
  s.n = 0;
  EXPECT_THROW(det.detect(s), std::invalid_argument);
}

TEST_F(DetectorTest, ASpectrumWithoutUsablePixelsIsARowNotAnError) {
  DetectorOptions o;
  o.threads = 1;
  Detector det(kModels + "default", o);
  std::vector<float> flux(2 * grid::kNPix, 1.0f);
  for (int p = 0; p < grid::kNPix; ++p) flux[p] = NAN;  // spectrum 0: nothing usable
  Spectra s;
  s.n = 2;
  s.flux = flux.data();
  const Detections r = det.detect(s);
  ASSERT_EQ(r.rows.size(), 2u);
  EXPECT_EQ(r.rows[0].probability, 0.0f);
  EXPECT_FALSE(r.rows[0].detected);
  EXPECT_TRUE(std::isnan(r.rows[0].lambda2796));
  EXPECT_TRUE(r.rows[0].flags & flag::kAllMasked);
  EXPECT_EQ(r.rows[0].masked_fraction, 1.0f);
  EXPECT_FALSE(r.rows[1].flags & flag::kAllMasked);  // a flat continuum: searched, nothing found
  EXPECT_FALSE(r.rows[1].detected);
  EXPECT_EQ(r.model_sha256, det.model().sha256);
}

TEST_F(DetectorTest, TakesAnEngineOfTheCallers) {
  // A spectrum with an MgII doublet at z = 0.5 (λ2796 in the blue arm), SNR 20 per pixel.
  std::vector<float> flux(grid::kNPix), err(grid::kNPix, 0.05f);
  for (int p = 0; p < grid::kNPix; ++p) {
    const double lam = grid::wavelength(p);
    double tau = 0.0;
    for (const double line : {2796.3543 * 1.5, 2803.5315 * 1.5})
      tau += 1.5 * std::exp(-0.5 * std::pow((lam - line) / 0.3, 2));
    flux[p] = static_cast<float>(std::exp(-tau) + 0.05 * std::sin(7.0 * p));
  }
  Spectra s;
  s.n = 1;
  s.flux = flux.data();
  s.err = err.data();
  DetectorOptions o;
  o.threads = 1;
  Detector own(kModels + "default", o);
  EngineOptions eo;
  eo.threads = 1;
  Detector given(kModels + "default", make_cpu_engine(kModels + "default", eo), o);
  const Detection a = own.detect(s).rows[0], b = given.detect(s).rows[0];
  EXPECT_EQ(a.probability, b.probability);
  EXPECT_EQ(a.lambda2796, b.lambda2796);
  EXPECT_EQ(a.flags, b.flags);
  EXPECT_TRUE(a.detected);
  EXPECT_NEAR(a.lambda2796, 2796.3543 * 1.5, 1.0);
  EXPECT_TRUE(std::isfinite(a.ew2796));
  // An engine of another model: refused.
  EXPECT_THROW(Detector(kModels + "default", make_cpu_engine(kModels + "multi", eo), o),
               std::invalid_argument);
  EXPECT_THROW(Detector(kModels + "default", nullptr, o), std::invalid_argument);
}

}  // namespace
}  // namespace mgfast

TEST(DetectorSteps, CalibrateIsNumpysInterp) {
  // values numpy.interp gives for x = [0, 0.5, 1], y = [0.1, 0.2, 0.9], rounded to float32
  const double x[3] = {0.0, 0.5, 1.0}, y[3] = {0.1, 0.2, 0.9};
  EXPECT_EQ(mgfast::steps::calibrate(0.25f, x, y, 3),
            static_cast<float>((0.2 - 0.1) / (0.5 - 0.0) * (0.25 - 0.0) + 0.1));
  EXPECT_EQ(mgfast::steps::calibrate(0.5f, x, y, 3),
            static_cast<float>(0.2));  // on a knot: its value
  EXPECT_EQ(mgfast::steps::calibrate(1.0f, x, y, 3), static_cast<float>(0.9));  // the last knot
  EXPECT_EQ(mgfast::steps::calibrate(-1.0f, x, y, 3),
            static_cast<float>(0.1));                                           // left of the curve
  EXPECT_EQ(mgfast::steps::calibrate(2.0f, x, y, 3), static_cast<float>(0.9));  // right of it
  EXPECT_TRUE(std::isnan(mgfast::steps::calibrate(NAN, x, y, 3)));
  EXPECT_EQ(mgfast::steps::calibrate(0.3f, x, y, 0), 0.3f);  // no curve: the score itself
}
