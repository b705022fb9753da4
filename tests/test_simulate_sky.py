"""The simulator's sky mode: domain-randomised kinematics, blends, instrument effects, impostors
(docs/simulator.md, "The sky mode"), and that none of it changes the paper-like defaults."""

from __future__ import annotations

import dataclasses
import hashlib

import numpy as np
import pytest

import mgfast
from mgfast import grid
from mgfast.simulate import FLAG_BAL, FLAG_DLA, INTERLOPER_KINDS, Realism
from mgfast.testing import measure_doublet_ews

from conftest import devices

C_KMS = 299792.458
W = grid.wavelength()


def _sky(n, seed, realism=None, **kw):
    kw.setdefault("with_absorber_fraction", 1.0)
    return mgfast.simulate(n, seed=seed, kinematics="sky", realism=realism, **kw)


def _digest(sim) -> str:
    h = hashlib.sha256()
    for a in (sim.flux, sim.err, sim.truth.abs_z, sim.truth.abs_ew2796):
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def test_neutral_sky_options_leave_the_paper_setup_unchanged():
    # Every sky switch at its neutral value is the default spectrum, to the bit.
    neutral = Realism.survey()
    explicit = dataclasses.replace(
        neutral, resolution_range=(20000.0, 20000.0), err_misestimate=0.0, cosmic_ray_rate=0.0
    )
    a = mgfast.simulate(50, seed=21, realism=neutral, max_absorbers=3)
    b = mgfast.simulate(50, seed=21, realism=explicit, max_absorbers=3, blend_fraction=0.0)
    assert _digest(a) == _digest(b)
    np.testing.assert_array_equal(a.truth.resolution, 20000.0)


def test_instrument_switches_do_not_change_the_absorbers():
    base = _sky(80, 22, Realism.survey())
    full = _sky(80, 22, Realism.sky())
    np.testing.assert_array_equal(base.truth.abs_z, full.truth.abs_z)
    np.testing.assert_array_equal(base.truth.abs_ew2796, full.truth.abs_ew2796)


def test_sky_kinematics_reach_broad_and_many_component_systems():
    t = _sky(1500, 23, ew_range=(0.02, 6.0), noise=False).truth
    assert np.all(t.flags == 0)  # every EW reached, nothing truncated
    np.testing.assert_allclose(t.ew2796, t.abs_ew2796_requested[:, 0], rtol=1e-4)
    v = t.comp_v[:, 0, :]
    extent = np.nanmax(v, axis=1) - np.nanmin(v, axis=1)
    strong = t.ew2796 > 3.0
    assert np.nanmax(extent[strong]) > 800.0
    assert np.mean(extent[strong] > 400.0) > 0.3  # not a tail: a good share is broad
    assert t.abs_n_components[:, 0].max() == 40
    b = t.comp_b[:, 0, :]
    assert np.nanmin(b) >= 1.0 and np.nanmax(b) <= 30.0
    assert t.ew2796.min() < 0.05 and t.ew2796.max() > 5.8
    ratio = t.ew2796 / t.ew2803
    assert np.all((ratio > 0.99) & (ratio < 2.02))
    # weak systems are near the optically thin 2, strong ones saturated
    assert np.median(ratio[t.ew2796 < 0.1]) > 1.4
    assert np.median(ratio[t.ew2796 > 3.0]) < 1.35


def test_sky_systems_are_centred_on_their_absorption():
    # Narrow enough that the two lines do not blend: the rendered λ2796 absorption centroid is
    # the truth's λ2796, and the EWs are what the truth says.
    sim = _sky(400, 24, ew_range=(0.1, 1.5), noise=False, return_clean=True)
    t = sim.truth
    ew = measure_doublet_ews(sim.clean, t.lambda2796, t.z)
    v = t.comp_v[:, 0, :]
    narrow = (np.nanmax(v, 1) - np.nanmin(v, 1)) < 200
    # (the damping wings of a few very saturated components cross the doublet's midpoint, where
    # the direct integration splits the lines: 2 %)
    np.testing.assert_allclose(ew[narrow, 0], t.ew2796[narrow], rtol=0.02)
    np.testing.assert_allclose(np.median(ew[narrow, 0] / t.ew2796[narrow]), 1.0, atol=3e-3)
    offsets = []
    for i in np.flatnonzero(narrow):
        lam = t.lambda2796[i]
        win = np.abs(W / lam - 1) * C_KMS < 330
        a = 1.0 - sim.clean[i, win]
        vel = (W[win] / lam - 1) * C_KMS
        offsets.append(np.sum(a * vel) / np.sum(a))
    assert np.median(np.abs(offsets)) < 3.0  # km/s (a pixel is 15)


def test_blends_lie_150_to_500_kms_from_the_first_absorber():
    t = _sky(300, 25, max_absorbers=2, blend_fraction=1.0, noise=False).truth
    two = t.n_absorbers == 2
    assert two.sum() > 100
    dv = np.abs(np.log(t.abs_lambda2796[two, 1] / t.abs_lambda2796[two, 0])) * C_KMS
    # placed 150-500 km/s apart (re-centring moves each zero by a few km/s at most), unless the
    # blend would leave the arm: then the second absorber is placed anywhere
    assert np.mean((dv > 140) & (dv < 510)) > 0.85


def test_resolution_is_drawn_per_spectrum_and_keeps_the_ew():
    r = Realism(resolution_range=(15000.0, 25000.0))
    sim = _sky(300, 26, r, ew_range=(0.1, 1.0), noise=False, return_clean=True)
    t = sim.truth
    assert 15000 <= t.resolution.min() < 16000 and 24000 < t.resolution.max() <= 25000
    ew = measure_doublet_ews(sim.clean, t.lambda2796, t.z)
    v = t.comp_v[:, 0, :]
    narrow = (np.nanmax(v, 1) - np.nanmin(v, 1)) < 200
    np.testing.assert_allclose(ew[narrow, 0], t.ew2796[narrow], rtol=0.02)
    np.testing.assert_allclose(np.median(ew[narrow, 0] / t.ew2796[narrow]), 1.0, atol=3e-3)
    # the same absorber is shallower at lower resolution
    one = dict(ew_range=(0.2, 0.2), noise=False)
    lo = _sky(1, 26, Realism(resolution_range=(15000.0, 15000.0)), **one)
    hi = _sky(1, 26, Realism(resolution_range=(25000.0, 25000.0)), **one)
    assert lo.flux.min() > hi.flux.min()


def test_error_arrays_are_misestimated_per_arm():
    r = Realism(err_misestimate=0.3)
    sim = _sky(200, 27, r, with_absorber_fraction=0.0, return_clean=True, snr=10.0)
    ref = _sky(200, 27, None, with_absorber_fraction=0.0, snr=10.0)
    ratio = sim.err / ref.err
    for a in grid.ARMS:
        arm = ratio[:, a.start : a.stop]
        np.testing.assert_allclose(arm, np.broadcast_to(arm[:, :1], arm.shape), rtol=1e-5)
        assert arm.min() >= 0.7 - 1e-6 and arm.max() <= 1.3 + 1e-6
    assert ratio.std() > 0.1


def test_correlated_noise_has_unit_variance_and_positive_lag_one_correlation():
    r = Realism(correlated_noise=1.0)
    sim = _sky(200, 28, r, with_absorber_fraction=0.0, snr=20.0, return_clean=True)
    z = (sim.flux - sim.clean) / sim.err
    assert abs(z.std() - 1.0) < 0.02
    lag1 = np.mean(z[:, 1:] * z[:, :-1])
    assert 0.25 < lag1 < 0.5  # ρ/(1+ρ²) averaged over ρ ~ U(0, 1): about 0.35
    plain = _sky(50, 28, None, with_absorber_fraction=0.0, snr=20.0, return_clean=True)
    zp = (plain.flux - plain.clean) / plain.err
    assert abs(np.mean(zp[:, 1:] * zp[:, :-1])) < 0.02


def test_cosmic_rays_are_unmasked_positive_spikes():
    r = Realism(cosmic_ray_rate=8.0)
    sim = _sky(100, 29, r, with_absorber_fraction=0.0, snr=20.0, return_clean=True)
    z = (sim.flux - sim.clean) / sim.err
    spikes = z > 8.0
    assert spikes.sum() > 300  # about 8 runs of 1-3 pixels per spectrum
    assert np.all(sim.err[spikes] > 0)  # not flagged in the error array
    assert (z < -8.0).sum() == 0


def test_impostors_bal_and_dla_appear_with_their_flags():
    r = dataclasses.replace(Realism.sky(), bal_fraction=0.5, dla_rate=1.0, interloper_rate=4.0)
    t = _sky(400, 30, r, z_em_range=(2.0, 3.6)).truth
    kinds = set(np.unique(t.interloper_kind)) - {-1}
    for name in ("NaI", "CaII", "FeII", "MgI", "DLA"):
        assert INTERLOPER_KINDS.index(name) in kinds, name
    assert 0.4 < np.mean((t.flags & FLAG_BAL) > 0) < 0.6
    assert np.mean((t.flags & FLAG_DLA) > 0) > 0.4
    # the Galaxy's CaII K and H sit at z ≈ 0
    zc = t.interloper_z[t.interloper_kind == INTERLOPER_KINDS.index("CaII")]
    assert np.any(np.abs(zc) < 1e-3)


def test_telluric_bands_absorb_in_the_red_arm_only():
    r = Realism(telluric=True)
    sim = _sky(200, 31, r, with_absorber_fraction=0.0, noise=False)
    dip = 1.0 - sim.flux.min(axis=0)
    band = (W > 6270) & (W < 6590)
    assert dip[band].max() > 0.1
    assert np.all(dip[~band] == 0)


@pytest.mark.parametrize("device", devices())
def test_sky_spectra_do_not_depend_on_batching(device):
    kw = dict(seed=32, kinematics="sky", realism=Realism.sky(), max_absorbers=4, return_clean=True)
    whole = mgfast.simulate(30, threads=2, **kw)
    parts = [
        mgfast.simulate(13, start=0, threads=1, device=device, **kw),
        mgfast.simulate(17, start=13, threads=2, device=device, **kw),
    ]
    tol = 0 if device == "cpu" else 1e-5
    for k in ("flux", "err", "clean"):
        got = np.concatenate([getattr(p, k) for p in parts])
        np.testing.assert_allclose(got, getattr(whole, k), rtol=0, atol=tol)


def test_sky_options_are_checked():
    with pytest.raises(ValueError, match="kinematics"):
        mgfast.simulate(1, kinematics="wide")
    with pytest.raises(ValueError, match="resolution_range"):
        mgfast.simulate(1, realism=Realism(resolution_range=(10000.0, 20000.0)))
    with pytest.raises(ValueError, match="blend_fraction"):
        mgfast.simulate(1, blend_fraction=2.0)
    with pytest.raises(ValueError, match="edge_margin"):
        mgfast.simulate(1, kinematics="sky", edge_margin=12.0)
