// Numerical building blocks of preprocessing: the banded solver, the B-spline basis and the
// LSF-rebinning weights, checked against independent computations.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "continuum.hpp"
#include "grid.hpp"
#include "resample.hpp"

using namespace mgfast;

TEST(Continuum, BandSolverMatchesDenseGaussianElimination) {
  const int m = 30;
  std::mt19937 rng(1);
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  std::vector<std::vector<double>> A(m, std::vector<double>(m, 0.0));
  for (int i = 0; i < m; ++i)
    for (int k = 1; k <= 3 && i + k < m; ++k) A[i][i + k] = A[i + k][i] = u(rng);
  for (int i = 0; i < m; ++i) A[i][i] = 8.0 + u(rng);  // diagonally dominant: SPD
  std::vector<double> x(m), rhs(m, 0.0);
  for (auto& v : x) v = u(rng);
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < m; ++j) rhs[i] += A[i][j] * x[j];
  double band[continuum::kMaxBasis][4] = {};
  for (int i = 0; i < m; ++i)
    for (int k = 0; k <= 3 && i + k < m; ++k) band[i][k] = A[i][i + k];
  ASSERT_TRUE(continuum::solve_band4(m, band, rhs.data()));
  for (int i = 0; i < m; ++i) EXPECT_NEAR(rhs[i], x[i], 1e-12);
}

TEST(Continuum, BasisIsAPartitionOfUnity) {
  double b[4];
  for (double x = 0.0; x <= 100.0; x += 0.37) {
    continuum::bspline_basis(x, 0.1, 10, b);  // knots every 10 pixels
    EXPECT_NEAR(b[0] + b[1] + b[2] + b[3], 1.0, 1e-14);
    for (double v : b) EXPECT_GE(v, 0.0);
  }
}

TEST(Continuum, FitsALowOrderPolynomialExactly) {
  // a cubic lies in the spline space and has no second-difference penalty bias beyond rounding
  // when the penalty is off; with the default clipping it must come back unchanged
  const int n = 2000;
  std::vector<float> f(n), cont(n);
  std::vector<std::uint8_t> good(n, 1), work(n);
  for (int i = 0; i < n; ++i) {
    const double x = i / double(n);
    f[i] = static_cast<float>(2.0 + x - 0.5 * x * x + 0.2 * x * x * x);
  }
  continuum::Params p;
  p.penalty = 0.0;
  ASSERT_TRUE(continuum::fit_arm(n, f.data(), nullptr, good.data(), work.data(), cont.data(), p));
  for (int i = 0; i < n; ++i) EXPECT_NEAR(cont[i], f[i], 2e-6);
}

TEST(Continuum, ASharedBasisTableGivesTheSameFitToTheBit) {
  // a noisy arm with absorption and a spike: clipping iterates, the table must not change a bit
  const int n = 2096;
  std::mt19937 rng(7);
  std::normal_distribution<double> noise(0.0, 0.05);
  std::vector<float> f(n), ivar(n, 400.0f), a(n), b(n);
  for (int i = 0; i < n; ++i) {
    const double x = i / double(n);
    const double line = 0.6 * std::exp(-0.5 * std::pow((i - 900) / 3.0, 2));
    f[i] = static_cast<float>((1.5 + 0.3 * std::sin(6 * x)) * (1.0 - line) + noise(rng));
  }
  f[1500] += 1.0f;
  std::vector<std::uint8_t> good(n, 1), work(n);
  good[10] = 0;
  continuum::Params p;
  std::vector<double> values(4 * n);
  std::vector<int> segment(n);
  continuum::fill_basis(n, p.knot_spacing, values.data(), segment.data());
  const continuum::Basis table{values.data(), segment.data()};
  ASSERT_TRUE(continuum::fit_arm(n, f.data(), ivar.data(), good.data(), work.data(), a.data(), p));
  ASSERT_TRUE(
      continuum::fit_arm(n, f.data(), ivar.data(), good.data(), work.data(), b.data(), p, &table));
  for (int i = 0; i < n; ++i) ASSERT_EQ(a[i], b[i]) << i;
}

TEST(Continuum, SelectKthAgreesWithNthElement) {
  std::mt19937 rng(3);
  std::uniform_int_distribution<int> small(0, 9);  // many ties
  for (int m : {1, 2, 3, 8, 101, 2000}) {
    std::vector<float> a(m);
    for (auto& v : a) v = static_cast<float>(small(rng));
    for (int k : {0, m / 2, m - 1}) {
      std::vector<float> x = a, y = a;
      std::nth_element(y.begin(), y.begin() + k, y.end());
      EXPECT_EQ(continuum::select_kth(x.data(), m, k), y[k]) << m << " " << k;
    }
  }
}

TEST(Continuum, SpikesAreMarkedAndAbsorptionIsNot) {
  // A flat arm at SNR 20 with absorption troughs that leave single continuum pixels between
  // them (higher than all their neighbours: not spikes, they reach the continuum and no higher),
  // a run of 3 spikes and a single one, and a bad pixel beside a spike.
  const int n = 600;
  std::mt19937 rng(5);
  std::normal_distribution<double> noise(0.0, 0.05);
  std::vector<float> f(n), ivar(n, 400.0f), scratch(n);
  std::vector<std::uint8_t> good(n, 1), work(n, continuum::kUse);
  for (int i = 0; i < n; ++i) f[i] = static_cast<float>(1.0 + noise(rng));
  for (int i = 200; i < 240; ++i)
    if (i % 4 != 0) f[i] = 0.05f;  // troughs, a continuum pixel every 4th
  for (int i : {100, 101, 102, 400}) f[i] = 50.0f;
  f[451] = 20.0f;
  good[450] = work[450] = 0;
  f[450] = 1e30f;  // bad: neither a spike nor a neighbour
  continuum::Params p;
  const int marked = continuum::mark_spikes(n, f.data(), ivar.data(), good.data(), work.data(), 0.0,
                                            scratch.data(), p);
  EXPECT_EQ(marked, 5);
  for (int i = 0; i < n; ++i) {
    const bool spike = i == 100 || i == 101 || i == 102 || i == 400 || i == 451;
    EXPECT_EQ(work[i], spike ? continuum::kSpike : (good[i] ? continuum::kUse : 0)) << i;
  }
  // without errors, against the noise of first differences: the same
  std::fill(work.begin(), work.end(), continuum::kUse);
  work[450] = 0;
  const double nv = continuum::difference_noise_var(n, f.data(), good.data(), scratch.data());
  EXPECT_NEAR(std::sqrt(nv), 0.05, 0.01);
  EXPECT_EQ(
      continuum::mark_spikes(n, f.data(), nullptr, good.data(), work.data(), nv, scratch.data(), p),
      5);
}

TEST(Resample, TheLsfEdgeCacheGivesTheSameRebinnedPixelsToTheBit) {
  // a fine log-uniform input (R 60000, 3 pixels per element), output pixels in order with a
  // jump (a new arm: the cache must not be used across it)
  const int n = 3000;
  std::vector<double> lnedge(n + 1);
  for (int k = 0; k <= n; ++k) lnedge[k] = std::log(5000.0) + k / 180000.0;
  std::vector<float> flux(n);
  std::vector<double> var(n, 1e-4);
  std::vector<std::uint8_t> good(n, 1);
  std::mt19937 rng(3);
  std::normal_distribution<double> noise(0.0, 0.01);
  for (int k = 0; k < n; ++k) flux[k] = static_cast<float>(1.0 + noise(rng));
  good[1200] = 0;
  const double sigma = 1.8e-5, step = 1.0 / 20000.0;
  std::vector<double> terms(n + 1);
  resample::LsfEdgeCache cache{terms.data()};
  double l0 = lnedge[0] + 5e-4;
  for (int p = 0; p < 100; ++p) {
    if (p == 60) l0 += 0.37 * step;  // a jump within the LSF's reach
    const double l1 = l0 + step;
    const auto a = resample::lsf_rebin_pixel(l0, l1, sigma, n, lnedge.data(), flux.data(),
                                             var.data(), good.data());
    const auto b = resample::lsf_rebin_pixel(l0, l1, sigma, n, lnedge.data(), flux.data(),
                                             var.data(), good.data(), &cache);
    ASSERT_EQ(a.flux, b.flux) << p;
    ASSERT_EQ(a.var, b.var) << p;
    ASSERT_EQ(a.covered, b.covered) << p;
    ASSERT_EQ(a.good, b.good) << p;
    l0 = l1;
  }
}

TEST(Resample, LsfRebinWeightsSumToOne) {
  // a fully covered output pixel: the weights of all input pixels sum to 1 (flux conservation)
  std::vector<double> lnedge;
  for (int k = 0; k <= 400; ++k) lnedge.push_back(std::log(5000.0) + k * 1.1e-5);
  std::vector<float> flux(400, 1.0f);
  std::vector<double> var(400, 1.0);
  std::vector<std::uint8_t> good(400, 1);
  const double l0 = std::log(5000.0) + 200 * 1.1e-5, l1 = l0 + 5e-5;
  const auto r = resample::lsf_rebin_pixel(l0, l1, 2e-5, 400, lnedge.data(), flux.data(),
                                           var.data(), good.data());
  EXPECT_NEAR(r.covered, 1.0, 7e-8);  // the kernel is truncated at 5.4 sigma
  EXPECT_NEAR(r.flux, 1.0f, 1e-6);
  EXPECT_LT(r.var, 1.0);  // averaging reduces the variance
}

TEST(Resample, PlainRebinIsTheOverlapWeightedMean) {
  const double edge[4] = {0.0, 1.0, 2.0, 4.0};
  const float flux[3] = {1.0f, 3.0f, 5.0f};
  const double var[3] = {1.0, 1.0, 4.0};
  const std::uint8_t good[3] = {1, 1, 1};
  const auto r = resample::rebin_pixel(0.5, 2.5, 3, edge, flux, var, good);
  EXPECT_NEAR(r.flux, (0.5 * 1 + 1.0 * 3 + 0.5 * 5) / 2.0, 1e-6);
  EXPECT_NEAR(r.var, (0.25 * 1 + 1.0 * 1 + 0.25 * 4) / 4.0, 1e-12);
  EXPECT_NEAR(r.covered, 1.0, 1e-12);
}

TEST(Resample, TheCursorFindsWhatTheBinarySearchFinds) {
  // irregular increasing edges; increasing search points, some before the first edge, some past
  // the last, some equal to an edge, several within one input pixel and jumps over many
  std::mt19937 rng(7);
  std::uniform_real_distribution<double> width(0.01, 2.0), step(0.0, 3.0);
  const int n = 500;
  std::vector<double> edge(n + 1);
  edge[0] = 100.0;
  for (int k = 1; k <= n; ++k) edge[k] = edge[k - 1] + width(rng);
  int cursor = 0;
  int checked = 0;
  for (double lam = edge[0] - 5.0; lam < edge[n] + 5.0; lam += step(rng)) {
    const int expected = resample::first_pixel_above(edge.data(), n, lam);
    ASSERT_EQ(resample::first_pixel(edge.data(), n, lam, &cursor), expected) << lam;
    ASSERT_EQ(cursor, expected);
    ++checked;
  }
  cursor = 0;                        // a new walk
  for (int k = 0; k <= n; k += 7) {  // exactly on edges, in order
    const int expected = resample::first_pixel_above(edge.data(), n, edge[k]);
    ASSERT_EQ(resample::first_pixel(edge.data(), n, edge[k], &cursor), expected) << k;
  }
  EXPECT_GT(checked, 100);
}

TEST(Resample, RebinWithACursorIsRebinWithoutOneToTheBit) {
  const int n = 800;
  std::mt19937 rng(11);
  std::uniform_real_distribution<double> width(0.05, 0.4), u(0.0, 1.0);
  std::vector<double> edge(n + 1), var(n);
  std::vector<float> flux(n);
  std::vector<std::uint8_t> good(n);
  edge[0] = 5000.0;
  for (int k = 1; k <= n; ++k) edge[k] = edge[k - 1] + width(rng);
  for (int k = 0; k < n; ++k) {
    flux[k] = static_cast<float>(1.0 + 0.1 * u(rng));
    var[k] = 0.01 + 0.01 * u(rng);
    good[k] = u(rng) > 0.05;
  }
  int cursor = 0;
  for (double lo = edge[0] - 1.0; lo < edge[n] + 1.0; lo += 0.17) {
    const auto a =
        resample::rebin_pixel(lo, lo + 0.17, n, edge.data(), flux.data(), var.data(), good.data());
    const auto b = resample::rebin_pixel(lo, lo + 0.17, n, edge.data(), flux.data(), var.data(),
                                         good.data(), &cursor);
    ASSERT_EQ(a.flux, b.flux) << lo;
    ASSERT_EQ(a.var, b.var) << lo;
    ASSERT_EQ(a.covered, b.covered) << lo;
    ASSERT_EQ(a.good, b.good) << lo;
  }
}

// The Lyman-alpha forest of an arm (continuum.hpp): rest 1040-1200 Å, none without z_em.
TEST(Continuum, ForestOfArm) {
  using namespace mgfast;
  const int n = grid::kArmNPix[0];
  const double lo = grid::kArmLo[0];
  const continuum::Forest none = continuum::forest_of_arm(NAN, n, lo, grid::kDlnLambda);
  EXPECT_EQ(none.begin, none.end);
  const continuum::Forest low = continuum::forest_of_arm(1.5, n, lo, grid::kDlnLambda);
  EXPECT_EQ(low.begin, low.end);  // 1200 x 2.5 = 3000 Å: blueward of the blue arm
  const double z = 2.5;           // forest 3640-4200 Å: the arm's start up to 4200 Å
  const continuum::Forest f = continuum::forest_of_arm(z, n, lo, grid::kDlnLambda);
  EXPECT_EQ(f.begin, 0);
  EXPECT_GT(f.end, 0);
  EXPECT_LT(f.end, n);
  EXPECT_GE(f.wavelength(f.end), 1200.0 * (1 + z));
  EXPECT_LT(f.wavelength(f.end - 1), 1200.0 * (1 + z));
  // Faucher-Giguere et al. 2008 at z = 2.5 and 3: F = 0.78, 0.66
  EXPECT_NEAR(continuum::mean_forest_flux(1215.67 * 3.5), std::exp(-0.0018 * std::pow(3.5, 3.92)),
              1e-12);
  EXPECT_NEAR(continuum::mean_forest_flux(1215.67 * 3.5), 0.78, 0.01);
  EXPECT_NEAR(continuum::mean_forest_flux(1215.67 * 4.0), 0.66, 0.01);
}
