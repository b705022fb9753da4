"""The doublet matched filter: recovery and localisation, false positives on noise, lone lines,
masks and gaps, analytic values, CPU against CUDA, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.special import erf

import mgfast
from mgfast import grid
from mgfast.atomic import MGII_2796, MGII_2803
from mgfast.matched_filter import DEFAULT_THRESHOLD, THIN_RATIO
from mgfast.testing import C_KMS, gaussian_line, mgii_doublet

from conftest import devices

SPACING = math.log(MGII_2803.wavelength / MGII_2796.wavelength) / grid.DLNLAMBDA  # pixels
INSTRUMENT_FWHM = C_KMS / grid.RESOLVING_POWER  # km/s
SUBPIXELS = 7


def pixel_average(profile, centre: float, half_width: float = 30.0) -> np.ndarray:
    """Transmission on the grid, each pixel the mean of profile(λ) over it (7 samples in ln λ)."""
    edges = grid.edges()
    t = (np.arange(SUBPIXELS) + 0.5) / SUBPIXELS
    out = np.ones(grid.N_PIX)
    near = np.abs(grid.wavelength() - centre) < half_width
    lam = edges[near, :1] * (edges[near, 1:] / edges[near, :1]) ** t[None, :]
    out[near] = profile(lam.ravel()).reshape(-1, SUBPIXELS).mean(axis=1)
    return out


def doublet(z: float, ew: float, ratio: float, fwhm: float) -> np.ndarray:
    """An MgII doublet of rest EW2796 ew (Å) and intrinsic FWHM (km/s), seen at R = 20000."""
    fwhm = math.hypot(fwhm, INSTRUMENT_FWHM)
    mid = 0.5 * (MGII_2796.wavelength + MGII_2803.wavelength) * (1 + z)
    return pixel_average(lambda w: mgii_doublet(w, z, ew, ratio, fwhm), mid)


def lone_line(lam: float, ew_obs: float, fwhm: float) -> np.ndarray:
    fwhm = math.hypot(fwhm, INSTRUMENT_FWHM)
    return pixel_average(lambda w: gaussian_line(w, lam, ew_obs, fwhm), lam)


def gaussian_pixels(x0: float, area: float, sigma: float) -> np.ndarray:
    """A pixel-integrated Gaussian on the stripped grid's pixel index, centred at x0."""
    k = np.arange(grid.N_PIX)
    s = sigma * math.sqrt(2.0)
    return area * 0.5 * (erf((k + 0.5 - x0) / s) - erf((k - 0.5 - x0) / s))


def pixel_doublet(x0: float, area: float, sigma: float, ratio: float) -> np.ndarray:
    """Absorption 1 − flux of a doublet of Gaussian lines, λ2796 at pixel x0, EW2796 area pixels."""
    return gaussian_pixels(x0, area, sigma) + gaussian_pixels(x0 + SPACING, area / ratio, sigma)


def random_redshifts(rng: np.random.Generator, n: int) -> np.ndarray:
    """Redshifts that put both lines (and their wings) inside one arm."""
    z = []
    while len(z) < n:
        arm = grid.ARMS[rng.integers(grid.N_ARMS)]
        lam1 = rng.uniform(arm.lo + 3.0, arm.hi - 3.0 - 2.5 * (MGII_2803.wavelength - 2796.3543))
        z.append(lam1 / MGII_2796.wavelength - 1.0)
    return np.array(z)


def noisy(transmission: np.ndarray, snr: float, rng: np.random.Generator):
    flux = transmission + rng.standard_normal(transmission.shape) / snr
    return flux.astype(np.float32), np.full(transmission.shape, snr**2, np.float32)


@pytest.fixture(scope="module")
def population():
    """300 doublets: rest EW2796 0.3-2 Å, EW ratio 1-2, FWHM 10-40 km/s plus 60 km/s per Å."""
    rng = np.random.default_rng(20)
    n = 300
    z = random_redshifts(rng, n)
    ew = rng.uniform(0.3, 2.0, n)
    ratio = rng.uniform(1.0, 2.0, n)
    fwhm = rng.uniform(10.0, 40.0, n) + 60.0 * ew
    t = np.array([doublet(*p) for p in zip(z, ew, ratio, fwhm, strict=True)])
    return t, MGII_2796.wavelength * (1 + z), ew


# ---- accuracy --------------------------------------------------------------------------------


@pytest.mark.parametrize("snr", [10.0, 20.0])
def test_finds_and_localises_doublets(population, snr):
    t, lam_true, ew = population
    flux, ivar = noisy(t, snr, np.random.default_rng(int(snr)))
    res = mgfast.match(flux, ivar)
    err = np.abs(res.lambda2796 - lam_true)
    found = res.detected & (err < 3.0)
    # measured: 100 % at both SNR, MAE 0.04 Å (SNR 10) and 0.02 Å (SNR 20); a one-pixel offset
    # would give ~0.28 Å
    assert found.mean() >= 0.98
    assert err[found].mean() < 0.2
    np.testing.assert_allclose(res.redshift, res.lambda2796 / MGII_2796.wavelength - 1, rtol=1e-12)
    # the EW is a Gaussian template's fit, so only rough for saturated lines: within 10 % typically
    assert abs(np.median(res.ew2796[found] / ew[found]) - 1) < 0.1


def test_noiseless_doublet_gives_analytic_values():
    # lines of exactly a template's shape: significance A sqrt(Σ T² ivar), EW and position exact
    sigma, ew_rest, ivar = 1.2, 0.4, 400.0
    ratio = math.sqrt(THIN_RATIO)  # the template's own ratio
    area = ew_rest / (MGII_2796.wavelength * grid.DLNLAMBDA)  # EW2796 in pixels
    template = pixel_doublet(3000.0, 1.0, sigma, ratio)
    want_s = area * math.sqrt(np.sum(template**2) * ivar)
    for x0 in (3000.0, 3000.2, 3000.5, 3000.8):
        flux = (1 - pixel_doublet(x0, area, sigma, ratio)).astype(np.float32)
        res = mgfast.match(flux, np.full(grid.N_PIX, ivar, np.float32))
        assert res.width == np.float32(sigma)
        assert abs(grid.pixel_of(res.lambda2796) - x0) < 1e-3
        assert abs(res.ew2796 / ew_rest - 1) < 1e-3
        if x0 == 3000.0:  # the significance is reported at the nearest whole pixel
            assert abs(res.significance / want_s - 1) < 1e-4


def test_false_positive_rate_on_noise():
    rng = np.random.default_rng(7)
    flux = (1 + 0.1 * rng.standard_normal((3000, grid.N_PIX))).astype(np.float32)
    with_ivar = mgfast.match(flux, np.full_like(flux, 100.0))
    estimated = mgfast.match(flux)
    # measured on 40,000 spectra: 1.02 % (ivar given) and 1.03 % (noise estimated) at 4.8
    assert with_ivar.detected.mean() <= 0.02
    assert estimated.detected.mean() <= 0.02
    # and the threshold is not needlessly high: noise does reach it
    assert with_ivar.detected.mean() >= 0.002
    assert DEFAULT_THRESHOLD == with_ivar.threshold


def test_estimated_noise_matches_given_errors():
    rng = np.random.default_rng(8)
    z = np.array([0.45, 0.9, 1.25])
    t = np.array([doublet(zz, 0.5, 1.4, 30.0) for zz in z])
    flux, ivar = noisy(np.repeat(t, 20, axis=0), 10.0, rng)
    given = mgfast.match(flux, ivar)
    ivar[::2] = 0.0  # a spectrum whose ivar is 0 everywhere has no errors either
    for est in (mgfast.match(flux), mgfast.match(flux, ivar)):
        np.testing.assert_allclose(est.significance, given.significance, rtol=0.06)
        np.testing.assert_allclose(est.lambda2796, given.lambda2796, atol=0.05)
    assert mgfast.match(flux, ivar).significance[1] == given.significance[1]


# ---- what is not a doublet --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lam", "ew_rest", "fwhm"),
    [(4100.0, 0.5, 30.0), (5450.0, 1.0, 60.0), (6400.0, 2.0, 150.0), (5300.0, 3.0, 250.0)],
)
def test_lone_line_is_not_a_doublet(lam, ew_rest, fwhm):
    rng = np.random.default_rng(9)
    ew_obs = ew_rest * lam / MGII_2796.wavelength
    line = lone_line(lam, ew_obs, fwhm)
    flux, ivar = noisy(np.repeat(line[None], 50, axis=0), 20.0, rng)
    flux = np.vstack([flux, line.astype(np.float32)])
    ivar = np.vstack([ivar, np.full(grid.N_PIX, 400.0, np.float32)])
    res = mgfast.match(flux, ivar)
    # neither as λ2796 nor as λ2803 (its alias, one spacing blueward)
    alias = lam * MGII_2796.wavelength / MGII_2803.wavelength
    c = res.candidate_lambda2796
    near = (np.abs(c - lam) < 3.0) | (np.abs(c - alias) < 3.0)
    assert not np.any(near & res.candidate_detected)
    # the same line with its partner is found in every realisation
    z = lam / MGII_2796.wavelength - 1
    partner = lone_line(MGII_2803.wavelength * (1 + z), ew_obs / 1.5, fwhm)
    res = mgfast.match(flux * partner.astype(np.float32), ivar)
    assert np.all(res.detected & (np.abs(res.lambda2796 - lam) < 1.0))


def test_doublets_across_a_gap_are_never_reported():
    # two lines a doublet's spacing apart in pixel index, but one each side of the blue-green gap
    area, sigma = 2.0, 1.2
    last_blue = grid.ARMS[0].stop - 1
    across = pixel_doublet(last_blue - 20.0, area, sigma, 1.4)
    inside = pixel_doublet(1000.0, area, sigma, 1.4)
    flux = (1 - np.stack([across, inside])).astype(np.float32)
    res = mgfast.match(flux, np.full_like(flux, 400.0))
    assert not res.detected[0]
    assert res.detected[1] and abs(res.lambda2796[1] - grid.wavelength()[1000]) < 0.01


def test_masked_pixels_carry_no_weight_and_never_give_nan():
    rng = np.random.default_rng(10)
    flux, ivar = noisy(doublet(0.9, 0.5, 1.4, 30.0)[None], 10.0, rng)
    flux, ivar = np.repeat(flux, 4, axis=0), np.repeat(ivar, 4, axis=0)
    lam1 = MGII_2796.wavelength * 1.9
    p1 = round(float(grid.pixel_of(lam1)))
    flux[:, 100:400], ivar[:, 100:400] = 1.0, 0.0  # masked somewhere else
    flux[1, 100:400] = np.nan  # masked pixels given as NaN instead of 1: the same
    flux[2, 2000:2100], ivar[2, 2000:2100] = 50.0, 0.0  # any value on weightless pixels: the same
    flux[3, p1 + 40 : p1 + 65], ivar[3, p1 + 40 : p1 + 65] = 1.0, 0.0  # λ2803 wholly masked
    res = mgfast.match(flux, ivar)
    assert res.detected[0] and abs(res.lambda2796[0] - lam1) < 0.3
    for k in ("candidate_significance", "candidate_lambda2796", "candidate_ew2796"):
        np.testing.assert_array_equal(getattr(res, k)[1:3], getattr(res, k)[[0, 0]])
    assert not np.any(np.abs(res.candidate_lambda2796[3] - lam1) < 3.0)
    assert np.all(np.isfinite(res.candidate_significance))
    for k in ("candidate_lambda2796", "candidate_ew2796"):
        assert np.all(np.isfinite(getattr(res, k)))


def test_a_spectrum_without_usable_pixels_has_no_candidate():
    flux = np.ones((2, grid.N_PIX), np.float32)
    flux[1, :] = np.nan
    res = mgfast.match(flux, np.zeros_like(flux))
    assert np.all(res.candidate_significance == 0) and not np.any(res.detected)
    assert np.all(np.isnan(res.candidate_lambda2796)) and np.all(np.isnan(res.width))


def test_two_doublets_both_among_the_candidates():
    rng = np.random.default_rng(11)
    z = [(0.45, 0.95), (1.00, 1.03), (1.26, 1.30)]  # different arms, and twice within one arm
    t = np.array([doublet(a, 0.6, 1.5, 40.0) * doublet(b, 0.4, 1.8, 30.0) for a, b in z])
    flux, ivar = noisy(np.repeat(t, 10, axis=0), 10.0, rng)
    res = mgfast.match(flux, ivar, top_k=4)
    for j, pair in enumerate(z):
        rows = slice(10 * j, 10 * (j + 1))
        for zz in pair:
            lam = MGII_2796.wavelength * (1 + zz)
            hit = np.abs(res.candidate_lambda2796[rows] - lam) < 0.5
            assert np.all((hit & res.candidate_detected[rows]).any(axis=1)), (pair, zz)
    # candidates of one spectrum are farther apart than two spacings within an arm
    c = res.candidate_lambda2796[0]
    px = grid.pixel_of(c[np.isfinite(c)])
    same_arm = grid.arm_of(c[np.isfinite(c)])[:, None] == grid.arm_of(c[np.isfinite(c)])[None, :]
    gaps = np.abs(px[:, None] - px[None, :])[same_arm & ~np.eye(px.size, dtype=bool)]
    assert np.all(gaps > 2 * SPACING - 1)


def test_one_spectrum_in_scalars_out():
    res = mgfast.match(np.ones(grid.N_PIX, np.float32), np.full(grid.N_PIX, 100.0), top_k=3)
    assert res.significance.shape == () and res.candidate_lambda2796.shape == (3,)


# ---- CPU and CUDA --------------------------------------------------------------------------------


@pytest.mark.parametrize("device", devices())
def test_threads_and_devices_give_identical_results(device):
    rng = np.random.default_rng(12)
    t = np.array([doublet(z, 0.3, 1.6, 30.0) for z in (0.42, 0.88, 1.3)])
    flux, ivar = noisy(np.tile(t, (6, 1)), 8.0, rng)
    ivar[1, 300:900] = 0.0
    ivar[2] = 0.0  # errors estimated for this one
    ref = mgfast.match(flux, ivar, top_k=5, threads=1)
    other = mgfast.match(flux, ivar, top_k=5, threads=2, device=device)
    tol = 0 if device == "cpu" else 1e-6
    for k in ("candidate_significance", "candidate_ew2796"):
        np.testing.assert_allclose(getattr(other, k), getattr(ref, k), rtol=tol, atol=tol)
    np.testing.assert_allclose(other.candidate_lambda2796, ref.candidate_lambda2796, rtol=tol)
    np.testing.assert_array_equal(other.candidate_width, ref.candidate_width)


def test_cuda_without_a_device_is_a_clear_error():
    if mgfast.cuda_device_count() > 0:
        pytest.skip("a CUDA device is present")
    with pytest.raises(RuntimeError, match=r"cuda:0|without CUDA"):
        mgfast.match(np.ones(grid.N_PIX, np.float32), device="cuda:0")


# ---- bad input: each a ValueError naming the argument ------------------------------------------


def test_wrong_inputs_raise_value_errors_naming_the_argument():
    g = np.ones(grid.N_PIX, np.float32)
    cases = [
        (dict(flux=np.ones(100, np.float32)), "flux"),
        (dict(flux=np.ones((2, 3, grid.N_PIX))), "flux"),
        (dict(flux=np.array([], np.float32)), "flux: empty"),
        (dict(flux=g.astype(np.complex64)), "flux: expected real"),
        (dict(flux=g, ivar=np.ones(5)), "ivar"),
        (dict(flux=g, ivar=-g), "ivar: contains negative"),
        (dict(flux=g, ivar=np.full(grid.N_PIX, np.nan)), "ivar: contains NaN"),
        (dict(flux=g, threshold=np.nan), "threshold"),
        (dict(flux=g, threshold="5"), "threshold"),
        (dict(flux=g, widths=()), "widths"),
        (dict(flux=g, widths=(0.1,)), "widths"),
        (dict(flux=g, widths=(1.0, 7.0)), "widths"),
        (dict(flux=g, widths=[1.0] * 9), "widths"),
        (dict(flux=g, top_k=0), "top_k"),
        (dict(flux=g, top_k=17), "top_k"),
        (dict(flux=g, top_k=2.5), "top_k"),
        (dict(flux=g, ratio_range=(2.0, 1.0)), "ratio_range"),
        (dict(flux=g, ratio_range=3.0), "ratio_range"),
        (dict(flux=g, ratio_sigma=-1.0), "ratio_sigma"),
        (dict(flux=g, device="tpu"), "device"),
        (dict(flux=g, device="cudax"), "device"),
        (dict(flux=g, threads=-1), "threads"),
    ]
    for kw, msg in cases:
        with pytest.raises(ValueError, match=msg):
            mgfast.match(**kw)
