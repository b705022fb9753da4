"""Preprocessing onto the grid: each step against an analytic value, CPU against CUDA."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import mgfast
from mgfast import PixelFlag, SpectrumFlag, grid
from mgfast.testing import C_KMS, log_grid

from conftest import devices

FWHM_PER_SIGMA = 2.3548200450309493


def irregular_grid(lo=3850.0, hi=6900.0, seed=0):
    """Wavelengths with pixel sizes varying randomly between 0.04 and 0.12 Å."""
    rng = np.random.default_rng(seed)
    steps = rng.uniform(0.04, 0.12, int((hi - lo) / 0.04) + 10)
    w = lo + np.concatenate([[0.0], np.cumsum(steps)])
    return w[w <= hi]


def input_edges(w):
    mid = 0.5 * (w[1:] + w[:-1])
    return np.concatenate([[w[0] - 0.5 * (w[1] - w[0])], mid, [w[-1] + 0.5 * (w[-1] - w[-2])]])


@pytest.mark.parametrize("device", devices())
def test_rebinning_conserves_integrated_flux(device):
    w = irregular_grid()
    f = (1.0 + 0.3 * np.sin(w / 50.0) + 1e-4 * (w - 5000.0)).astype(np.float32)
    out = mgfast.preprocess(f, w, device=device)
    # the input as the piecewise-constant function the rebinning integrates: its running
    # integral is piecewise linear, so interpolating it at the output edges is exact
    e = input_edges(w)
    cum = np.concatenate([[0.0], np.cumsum(f.astype(np.float64) * np.diff(e))])
    ge = grid.edges()
    for a in grid.ARMS:
        s = a.slice
        got = np.sum(out.flux[s].astype(np.float64) * (ge[s, 1] - ge[s, 0]))
        want = np.interp(ge[a.stop - 1, 1], e, cum) - np.interp(ge[a.start, 0], e, cum)
        assert abs(got / want - 1) < 1e-6, a.name
    assert out.flags == SpectrumFlag.NO_ERRORS


@pytest.mark.parametrize("resolution", [None, 45000.0, 120000.0])
def test_rebinning_propagates_errors(resolution):
    # white noise of known sigma: the propagated ivar must predict the scatter of the output,
    # also when degradation correlates neighbouring input pixels before they are averaged
    w = irregular_grid(seed=1)
    rng = np.random.default_rng(2)
    sig = rng.uniform(0.05, 0.2, w.size).astype(np.float32)
    flux = 1.0 + rng.standard_normal((400, w.size)).astype(np.float32) * sig
    out = mgfast.preprocess(flux, w, np.broadcast_to(sig, flux.shape), resolution=resolution)
    pred = 1.0 / out.ivar[0]
    np.testing.assert_allclose(out.ivar, out.ivar[0][None, :].repeat(400, 0), rtol=1e-6)
    ratio = out.flux.var(axis=0, ddof=1) / pred
    # 400 realisations: each pixel's ratio scatters by sqrt(2/399) = 7 %; the mean is tight
    assert abs(ratio.mean() - 1) < 0.01
    assert np.percentile(np.abs(ratio - 1), 99) < 0.25


@pytest.mark.parametrize("center", [4100.0, 5400.0, 6500.0])
@pytest.mark.parametrize("fwhm_int_kms", [5.0, 12.0])
def test_lsf_degradation_gives_expected_fwhm_and_ew(center, fwhm_int_kms):
    r_in = 60000.0
    w = log_grid(center - 20, center + 20, r_in, 4.0)
    # an intrinsic Gaussian line observed at R = 60000: widths add in quadrature
    sig_obs = center / C_KMS * math.hypot(fwhm_int_kms, C_KMS / r_in) / FWHM_PER_SIGMA
    ew = 0.05
    depth = ew / (sig_obs * math.sqrt(2 * math.pi))
    f = (1 - depth * np.exp(-0.5 * ((w - center) / sig_obs) ** 2)).astype(np.float32)
    deg, _, good = mgfast.lsf_degrade(w, f, r_in)
    assert good.all()
    a = 1.0 - deg.astype(np.float64)
    dw = np.diff(input_edges(w))
    got_ew = np.sum(a * dw)
    mu = np.sum(a * w * dw) / got_ew
    got_fwhm = math.sqrt(np.sum(a * (w - mu) ** 2 * dw) / got_ew) * FWHM_PER_SIGMA
    want_fwhm = center / C_KMS * math.hypot(fwhm_int_kms, C_KMS / 20000.0)
    assert abs(got_fwhm / want_fwhm - 1) < 0.01
    assert abs(got_ew / ew - 1) < 0.005


def test_degrade_then_rebin_keeps_equivalent_width():
    r_in = 60000.0
    w = log_grid(5200.0, 5700.0, r_in, 3.0)
    sig = 5450.0 * 20.0 / C_KMS / FWHM_PER_SIGMA
    ew = 0.4
    f = 1 - ew / (sig * math.sqrt(2 * math.pi)) * np.exp(-0.5 * ((w - 5450.0) / sig) ** 2)
    out = mgfast.preprocess(f.astype(np.float32), w, resolution=r_in, allow_empty=True)
    ge, s = grid.edges(), grid.ARMS[1].slice
    got = np.sum((1.0 - out.flux[s]) * (ge[s, 1] - ge[s, 0]))
    assert abs(got / ew - 1) < 0.005
    assert out.flags & SpectrumFlag.ARM_MISSING_BLUE and out.flags & SpectrumFlag.ARM_MISSING_RED


def test_degradation_is_skipped_at_or_below_r20000():
    w = log_grid(3900.0, 6800.0, 20000.0, 2.0)
    f = np.random.default_rng(0).uniform(0.5, 1.5, w.size).astype(np.float32)
    deg, _, _ = mgfast.lsf_degrade(w, f, 20000.0)
    np.testing.assert_array_equal(deg, f)
    out = mgfast.preprocess(f, w, resolution=5000.0)
    assert out.flags & SpectrumFlag.LOW_RESOLUTION


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("on_grid", [True, False])
def test_bad_pixels_are_flagged_filled_and_counted(device, on_grid):
    rng = np.random.default_rng(3)
    n = 8
    w = grid.wavelength() if on_grid else log_grid(3900.0, 6800.0, 20000.0, 2.5)
    flux = (1 + 0.05 * rng.standard_normal((n, w.size))).astype(np.float32)
    err = np.full_like(flux, 0.05)
    bad = rng.random(flux.shape) < 0.05
    kinds = rng.integers(0, 5, flux.shape)
    flux[bad & (kinds == 0)] = np.nan
    flux[bad & (kinds == 1)] = np.inf
    err[bad & (kinds == 2)] = 0.0
    err[bad & (kinds == 3)] = -1.0
    err[bad & (kinds == 4)] = np.nan
    mask = np.zeros(flux.shape, np.uint16)
    mask[:, 100:110] = 4  # a quality bit that counts as bad
    mask[:, 200:210] = 8  # one that does not
    out = mgfast.preprocess(flux, None if on_grid else w, err, mask=mask, bad_bits=4, device=device)
    assert np.isfinite(out.flux).all() and np.isfinite(out.ivar).all()
    masked = out.pixmask != 0
    assert np.all(out.flux[masked] == 1.0) and np.all(out.ivar[masked] == 0.0)
    assert np.all(out.ivar[~masked] > 0)
    if on_grid:
        np.testing.assert_array_equal(masked, bad | (mask == 4))
        np.testing.assert_array_equal(out.flux[~masked], flux[~masked])
    else:
        # an output pixel is masked when under half of it is covered by good input
        assert masked.mean() < 0.05
    assert np.all(out.pixmask[:, 100:110] & PixelFlag.BAD_INPUT if on_grid else True)
    for i, a in enumerate(grid.ARMS):
        np.testing.assert_array_equal(out.n_masked[:, i], masked[:, a.slice].sum(1))


def test_fast_path_equals_passing_the_grid():
    rng = np.random.default_rng(4)
    f = (1 + 0.1 * rng.standard_normal((3, grid.N_PIX))).astype(np.float32)
    e = np.full_like(f, 0.1)
    a = mgfast.preprocess(f, None, e)
    b = mgfast.preprocess(f, grid.wavelength(), e)
    for k in ("flux", "ivar", "pixmask", "flags"):
        np.testing.assert_array_equal(getattr(a, k), getattr(b, k))
    np.testing.assert_array_equal(a.flux, f)
    np.testing.assert_allclose(a.ivar, 100.0, rtol=1e-6)


def test_one_spectrum_in_one_out():
    f = np.ones(grid.N_PIX, np.float32)
    out = mgfast.preprocess(f)
    assert out.flux.shape == (grid.N_PIX,) and out.flags.shape == ()
    assert out.arm_missing.shape == (3,)


def test_missing_arm_is_flagged_or_raises():
    w = log_grid(3900.0, 5800.0, 20000.0, 2.0)  # no red arm
    f = np.ones((2, w.size), np.float32)
    out = mgfast.preprocess(f, w, np.full_like(f, 0.1))
    assert np.all(out.flags & SpectrumFlag.ARM_MISSING_RED)
    assert not np.any(out.flags & (SpectrumFlag.ARM_MISSING_BLUE | SpectrumFlag.ARM_MISSING_GREEN))
    np.testing.assert_array_equal(out.arm_missing, [[False, False, True]] * 2)
    red = grid.ARMS[2].slice
    assert np.all(out.pixmask[:, red] & PixelFlag.ARM_MISSING)
    assert np.all(out.pixmask[:, red] & PixelFlag.NOT_COVERED)
    assert np.all(out.flux[:, red] == 1) and np.all(out.ivar[:, red] == 0)
    np.testing.assert_array_equal(out.n_masked[:, 2], grid.ARMS[2].n_pix)
    with pytest.raises(ValueError, match="red arm"):
        mgfast.preprocess(f, w, np.full_like(f, 0.1), missing_arm="raise")


def test_half_covered_arm_follows_min_arm_good():
    w = log_grid(3900.0, 6000.0, 20000.0, 2.0)
    w = np.concatenate([w, log_grid(6100.0, 6400.0, 20000.0, 2.0)])  # 43 % of the red arm
    f = np.ones(w.size, np.float32)
    assert mgfast.preprocess(f, w).flags & SpectrumFlag.ARM_MISSING_RED
    assert not mgfast.preprocess(f, w, min_arm_good=0.4).flags & SpectrumFlag.ARM_MISSING_RED


@pytest.mark.parametrize("device", devices())
def test_threads_and_devices_give_identical_results(device):
    rng = np.random.default_rng(5)
    w = log_grid(3900.0, 6800.0, 45000.0, 3.0)
    f = (1 + 0.1 * rng.standard_normal((24, w.size))).astype(np.float32)
    e = np.full_like(f, 0.1)
    kw = dict(resolution=45000.0, normalised=False, return_continuum=True)
    ref = mgfast.preprocess(f, w, e, threads=1, **kw)
    other = mgfast.preprocess(f, w, e, threads=2, device=device, **kw)
    tol = 0 if device == "cpu" else 1e-5
    for k in ("flux", "ivar", "continuum"):
        np.testing.assert_allclose(getattr(other, k), getattr(ref, k), rtol=tol, atol=tol)
    np.testing.assert_array_equal(other.pixmask, ref.pixmask)


# ---- bad input: each a ValueError naming the argument ------------------------------------


def test_wrong_inputs_raise_value_errors_naming_the_argument():
    g = np.ones(grid.N_PIX, np.float32)
    w = log_grid(3900.0, 6800.0, 20000.0, 2.0)
    f = np.ones(w.size, np.float32)
    cases = [
        (dict(flux=np.ones(100, np.float32)), "flux"),  # off grid without wave
        (dict(flux=np.ones((2, 3, 4))), "flux"),
        (dict(flux=np.array([], np.float32)), "flux: empty"),
        (dict(flux=g.astype(np.complex64)), "flux: expected real"),
        (dict(flux=np.array(["a"] * grid.N_PIX)), "flux: expected real"),
        (dict(flux=np.full(grid.N_PIX, np.nan)), "no finite value"),
        (dict(flux=f, wave=w[::-1]), "wave: wavelengths must increase"),
        (dict(flux=f, wave=np.where(np.arange(w.size) == 5, np.nan, w)), "wave: contains NaN"),
        (dict(flux=f, wave=w[:-1]), "wave"),
        (dict(flux=g, err=np.ones(5)), "err"),
        (dict(flux=g, err=g, ivar=g), "err, ivar"),
        (dict(flux=g, mask=np.ones(grid.N_PIX)), "mask: expected integer"),
        (dict(flux=f, wave=w, resolution=-1.0), "resolution"),
        (dict(flux=f, wave=w, resolution=[1.0, 2.0]), "resolution"),
        (dict(flux=g, missing_arm="drop"), "missing_arm"),
        (dict(flux=g, min_pixel_good=0.0), "min_pixel_good"),
        (dict(flux=g, err=np.zeros(grid.N_PIX)), "no usable pixel"),
        (dict(flux=g, device="tpu"), "device"),
        (dict(flux=g, normalised=False, continuum=mgfast.ContinuumOptions(knot_spacing=2)),
         "knot_spacing"),
    ]  # fmt: skip
    for kw, msg in cases:
        with pytest.raises(ValueError, match=msg):
            mgfast.preprocess(**kw)


def test_all_nan_spectrum_can_be_kept_flagged():
    f = np.ones((3, grid.N_PIX), np.float32)
    f[1] = np.nan
    out = mgfast.preprocess(f, allow_empty=True)
    assert out.flags[1] & SpectrumFlag.ALL_MASKED
    assert not out.flags[0] & SpectrumFlag.ALL_MASKED
    assert np.all(out.flux[1] == 1)


def test_cuda_without_a_device_is_a_clear_error():
    if mgfast.cuda_device_count() > 0:
        pytest.skip("a CUDA device is present")
    with pytest.raises(RuntimeError, match=r"cuda:0|without CUDA"):
        mgfast.preprocess(np.ones(grid.N_PIX, np.float32), device="cuda:0")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    flux=hnp.arrays(
        np.float32,
        st.tuples(st.integers(1, 3), st.integers(2, 300)),
        elements=st.floats(width=32, allow_nan=True, allow_infinity=True),
    ),
    start=st.floats(3000.0, 7000.0),
    step=st.floats(0.01, 20.0),
    normalised=st.booleans(),
)
def test_fuzzed_spectra_never_crash_or_leak_nan(flux, start, step, normalised):
    wave = start + step * np.arange(flux.shape[1])
    try:
        out = mgfast.preprocess(
            flux, wave, np.ones_like(flux), normalised=normalised, allow_empty=True
        )
    except ValueError as e:
        assert "flux" in str(e) or "wave" in str(e)
        return
    assert np.isfinite(out.flux).all() and np.isfinite(out.ivar).all()
    assert np.all(out.flux[out.pixmask != 0] == 1.0)


# ---- unit-free numerics -----------------------------------------------------------------


def test_a_power_of_two_in_the_flux_unit_changes_no_bit():
    # Unnormalised spectra far from 1 are brought back by a power of two, which is exact and
    # commutes with every step: the normalised output is the same to the bit, the continuum comes
    # back in the input's units (and precision).
    sim = mgfast.simulate(4, seed=3, snr=10, realism=mgfast.Realism(unnormalised=True))
    kw = dict(normalised=False, return_continuum=True)
    ref = mgfast.preprocess(sim.flux, grid.wavelength(), sim.err, **kw)
    for k in (-70, -30, 30, 70):  # float32 overflows 1/σ² beyond about 2^±62
        s = np.float32(2.0**k)
        out = mgfast.preprocess(sim.flux * s, grid.wavelength(), sim.err * s, **kw)
        for name in ("flux", "ivar", "pixmask", "flags"):
            np.testing.assert_array_equal(getattr(out, name), getattr(ref, name), err_msg=name)
        np.testing.assert_array_equal(out.continuum, ref.continuum * s)
    tiny = mgfast.preprocess(sim.flux.astype(np.float64) * 1e-40, None,
                             sim.err.astype(np.float64) * 1e-40, **kw)  # fmt: skip
    assert tiny.continuum.dtype == np.float64 and ref.continuum.dtype == np.float32
    np.testing.assert_allclose(tiny.continuum * 1e40, ref.continuum, rtol=1e-6)
    np.testing.assert_allclose(tiny.flux, ref.flux, rtol=1e-6)


def test_unit_exponents_of_odd_spectra():
    # the level is the median error over good pixels (|flux| without errors); a power of two
    from mgfast.preprocess import UNIT_EXPONENT_LIMIT, _unit_exponents

    n = grid.N_PIX
    f = np.ones((6, n), np.float64)
    f[1] *= 1e-19  # W m^-2 nm^-1
    f[2] = 0.0  # no flux: errors set the level all the same
    f[3, ::2] = np.nan  # every sampled pixel bad: all of them are used
    f[3] *= 1e15
    f[5] = np.nan  # nothing usable: left alone
    e = 0.1 * np.where(np.isfinite(f), f, 1.0)
    e[2] = 1e-21
    e[4] = 2.0 ** -(UNIT_EXPONENT_LIMIT - 1)  # within 2^±UNIT_EXPONENT_LIMIT: left alone
    k = _unit_exponents(f, e, False, None, 0)
    assert k[0] == 0 and k[4] == 0 and k[5] == 0
    for i, level in ((1, 1e-20), (2, 1e-21), (3, 1e14)):
        assert abs(np.log2(level) - k[i]) <= 0.5, i
    np.testing.assert_array_equal(_unit_exponents(f, 1.0 / e**2, True, None, 0), k)
    np.testing.assert_array_equal(_unit_exponents(f, None, False, None, 0)[:2], [0, -63])
    # masked pixels and pixels with unusable errors do not count
    m = np.zeros((6, n), np.uint32)
    e2 = e.copy()
    e2[0, : n // 2], m[0, : n // 2] = 1e30, 1
    e2[1, : n // 2] = np.inf
    np.testing.assert_array_equal(_unit_exponents(f, e2, False, m, 1), k)


# ---- wavelengths that cannot be searched -------------------------------------------------


@pytest.mark.parametrize(
    "convert, message",
    [
        (lambda w: w / 10, r"wave: 392.6-67[89].* looks like nm; mgfast wants vacuum Å \(multiply"),
        (lambda w: w / 1e4, r"looks like µm.*multiply by 1e4"),
        (lambda w: w / 1e10, r"looks like m;.*multiply by 1e10"),
        (np.log10, r"looks like log10\(λ/Å\).*10\*\*wave"),
        (lambda w: w - 3000, r"Å misses every arm of the grid \(blue 3926-4355"),  # far UV
        (lambda w: 4400 + (w - w[0]) * 0.2, r"misses every arm"),  # the blue-green gap
    ],
    ids=["nm", "um", "m", "log10", "ultraviolet", "gap"],
)
def test_wavelengths_that_miss_every_arm_are_rejected(convert, message):
    # They used to come back ALL_MASKED (probability 0 from the Detector), without an error.
    w = log_grid(3926.0, 6790.0, 20000.0, 2.0)
    f = np.ones(w.size, np.float32)
    with pytest.raises(ValueError, match=message):
        mgfast.preprocess(f, convert(w), allow_empty=True)
    with pytest.raises(ValueError, match=message):
        mgfast.Detector(method="matched-filter").detect(f, convert(w), normalised=False)


def test_per_spectrum_wavelengths_name_the_spectrum_that_misses():
    w = log_grid(3926.0, 6790.0, 20000.0, 2.0)
    ws = np.stack([w, w / 10, w])
    with pytest.raises(ValueError, match=r"wave \(spectrum 1\): .* looks like nm"):
        mgfast.preprocess(np.ones(ws.shape, np.float32), ws)


def test_one_arm_is_enough():
    # Covering one arm is legitimate: the others are flagged. Overlapping an arm only by a sliver
    # (under min_arm_good of it) is not an error either: the spectrum is flagged ALL_MASKED.
    missing = SpectrumFlag.ARM_MISSING_BLUE | SpectrumFlag.ARM_MISSING_GREEN
    for lo, hi in ((6100.0, 6790.0), (6400.0, 7500.0)):
        w = log_grid(lo, hi, 20000.0, 2.0)
        out = mgfast.preprocess(np.ones(w.size, np.float32), w)
        assert out.flags & missing == missing and not out.flags & SpectrumFlag.ARM_MISSING_RED
    w = log_grid(3000.0, 4000.0, 20000.0, 2.0)  # 74 of the blue arm's 429 Å
    out = mgfast.preprocess(np.ones(w.size, np.float32), w, allow_empty=True)
    assert out.flags & SpectrumFlag.ALL_MASKED
    with pytest.raises(ValueError, match="no usable pixel"):
        mgfast.preprocess(np.ones(w.size, np.float32), w)
