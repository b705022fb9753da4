"""The simulator: injected profiles against their truth, SNR, sampling, determinism, CPU vs CUDA."""

from __future__ import annotations

import numpy as np
import pytest

import mgfast
from mgfast import grid
from mgfast.atomic import MGII_2796, MGII_2803
from mgfast.simulate import NO_ABSORBER_LAMBDA, PAPER_SNR, Realism
from mgfast.testing import measure_doublet_ews

from conftest import devices

C_KMS = 299792.458
DW = np.diff(grid.edges(), axis=1)[:, 0]
W = grid.wavelength()


def test_injected_equivalent_widths_equal_the_truth():
    sim = mgfast.simulate(2000, seed=3, noise=False, with_absorber_fraction=1.0, return_clean=True)
    t = sim.truth
    assert np.all(t.flags == 0)
    ew = measure_doublet_ews(sim.clean, t.lambda2796, t.z)
    np.testing.assert_allclose(ew[:, 0], t.ew2796, rtol=0.01)
    np.testing.assert_allclose(ew[:, 1], t.ew2803, rtol=0.01)
    # and the column densities were solved for the EW that was drawn
    np.testing.assert_allclose(t.ew2796, t.abs_ew2796_requested[:, 0], rtol=1e-4)
    # saturation: the doublet ratio lies between 1 and the optically thin 2.01
    ratio = t.ew2796 / t.ew2803
    assert np.all((ratio > 0.99) & (ratio < 2.02))
    assert 1.0 < np.median(ratio) < 1.3


def test_paper_sampling():
    sim = mgfast.simulate(6000, seed=4, noise=False)
    t = sim.truth
    frac = t.has_absorber.mean()
    assert abs(frac - 0.8) < 4 * np.sqrt(0.8 * 0.2 / 6000)
    assert np.all(t.lambda2796[~t.has_absorber] == NO_ABSORBER_LAMBDA)
    assert set(np.unique(t.snr)) == set(PAPER_SNR)
    lam = t.lambda2796[t.has_absorber]
    lam2 = lam * MGII_2803.wavelength / MGII_2796.wavelength
    e = grid.edges()
    inside = np.zeros(lam.size, bool)
    for a in grid.ARMS:
        lo, hi = e[a.start, 0], e[a.stop - 1, 1]
        inside |= (lam - 25 >= lo) & (lam2 + 25 <= hi)
    assert inside.all()
    ew = t.ew2796[t.has_absorber]
    assert ew.min() >= 0.05 and ew.max() <= 5.15
    # flat in EW: 11 bins of equal width hold equal counts within 5 sigma
    counts, _ = np.histogram(ew, bins=11, range=(0.05, 5.15))
    assert np.all(np.abs(counts - counts.mean()) < 5 * np.sqrt(counts.mean()))


@pytest.mark.parametrize("snr", PAPER_SNR)
def test_snr_at_arm_centres(snr):
    sim = mgfast.simulate(300, seed=5, snr=snr, with_absorber_fraction=0.0, return_clean=True)
    resid = sim.flux - sim.clean
    for a in grid.ARMS:
        c = (a.start + a.stop) // 2
        centre = slice(c - 100, c + 100)
        measured = 1.0 / resid[:, centre].std()
        assert abs(measured / snr - 1) < 0.02, a.name
        np.testing.assert_allclose(sim.err[:, centre], 1.0 / snr, rtol=1e-6)


def test_noise_is_standard_normal_into_the_tails():
    """The per-pixel normals (Philox + Box-Muller on branch-free float functions): moments,
    the Kolmogorov-Smirnov distance to N(0, 1), and the tail fractions out to 5 sigma."""
    from scipy import stats

    sim = mgfast.simulate(400, seed=11, snr=10.0, with_absorber_fraction=0.0, return_clean=True)
    z = ((sim.flux - sim.clean) / sim.err).ravel().astype(np.float64)  # 2.5 million normals
    assert abs(z.mean()) < 5 / np.sqrt(z.size)
    assert abs(z.std() - 1) < 5 / np.sqrt(2 * z.size)
    assert stats.kstest(z, "norm").statistic < 1.5e-3
    for k in (3.0, 4.0, 5.0):
        expected = 2 * stats.norm.sf(k) * z.size
        observed = np.count_nonzero(np.abs(z) > k)
        assert abs(observed - expected) < 5 * np.sqrt(expected) + 2, (k, observed, expected)
    # Neighbouring pixels (the two halves of one Box-Muller pair) are uncorrelated.
    pairs = ((sim.flux - sim.clean) / sim.err)[:, : 2 * (grid.N_PIX // 2)].reshape(-1, 2)
    assert abs(np.corrcoef(pairs[:, 0], pairs[:, 1])[0, 1]) < 5 / np.sqrt(len(pairs))


def test_snr_falls_towards_arm_ends():
    sim = mgfast.simulate(2, seed=6, snr=10.0, with_absorber_fraction=0.0)
    for a in grid.ARMS:
        err = sim.err[0, a.slice]
        assert err[0] == pytest.approx(0.25, rel=1e-6)  # 2.5x lower SNR at the end
        assert err[-1] == pytest.approx(0.25, rel=1e-6)
        assert err[420] == pytest.approx(0.1, rel=1e-6)  # full SNR from 420 pixels in
        assert np.all(np.diff(err[:421]) <= 0)


@pytest.mark.parametrize("device", devices())
def test_same_seed_and_index_give_the_same_spectrum(device):
    kw = dict(seed=7, realism=Realism.survey(), max_absorbers=4, return_clean=True)
    whole = mgfast.simulate(60, threads=2, **kw)
    parts = [
        mgfast.simulate(25, start=0, threads=1, device=device, **kw),
        mgfast.simulate(35, start=25, threads=2, device=device, **kw),
    ]
    tol = 0 if device == "cpu" else 1e-5
    for k in ("flux", "err", "clean"):
        got = np.concatenate([getattr(p, k) for p in parts])
        np.testing.assert_allclose(got, getattr(whole, k), rtol=0, atol=tol)
    np.testing.assert_array_equal(
        np.concatenate([p.truth.n_absorbers for p in parts]), whole.truth.n_absorbers
    )
    other = mgfast.simulate(60, seed=8)
    assert not np.array_equal(other.flux, whole.flux)


def test_several_absorbers_do_not_overlap():
    sim = mgfast.simulate(500, seed=9, max_absorbers=4, with_absorber_fraction=1.0, noise=False)
    t = sim.truth
    assert set(np.unique(t.n_absorbers)) == {1, 2, 3, 4}
    for i in range(len(t)):
        lam = np.sort(t.abs_lambda2796[i, : t.n_absorbers[i]])
        # each doublet keeps 10 Å clear of the next one's 2796 line
        assert np.all(lam[1:] > lam[:-1] * MGII_2803.wavelength / MGII_2796.wavelength + 10)


def test_noiseless_spectrum_without_lines_is_flat():
    sim = mgfast.simulate(5, seed=10, noise=False, with_absorber_fraction=0.0)
    np.testing.assert_array_equal(sim.flux, 1.0)


def test_forest_lies_below_lyman_alpha_only():
    r = Realism(forest=True)
    sim = mgfast.simulate(
        40, seed=11, realism=r, with_absorber_fraction=0.0, noise=False, z_em_range=(2.4, 3.4)
    )
    for i in range(len(sim)):
        lya = 1215.67 * (1 + sim.truth.z_em[i])
        # beyond the reach of the lines' wings (330 km/s) and the LSF
        above = W > lya * np.exp(400 / C_KMS)
        assert np.all(sim.flux[i, above] == 1.0)
        below = W < lya * np.exp(-400 / C_KMS)
        if below.sum() > 500:
            # the forest absorbs a good fraction of the flux at these redshifts
            assert 0.5 < sim.flux[i, below].mean() < 0.95


def test_metal_companions_sit_at_the_absorber_redshift():
    r = Realism(metals=True)
    sim = mgfast.simulate(
        200, seed=12, realism=r, with_absorber_fraction=1.0, noise=False, ew_range=(2, 5)
    )
    z = sim.truth.z
    lam = 2600.1729 * (1 + z)  # FeII 2600, the strongest companion
    pix = grid.pixel_of(lam)
    ok = np.isfinite(pix)
    depth = 1 - sim.flux[np.flatnonzero(ok), np.round(pix[ok]).astype(int)]
    assert ok.sum() > 20 and np.median(depth) > 0.2


def test_unnormalised_flux_follows_a_quasar_continuum():
    r = Realism(unnormalised=True)
    sim = mgfast.simulate(20, seed=13, realism=r, with_absorber_fraction=0.0, noise=False)
    assert np.all(sim.flux > 0) and not np.allclose(sim.flux, 1.0)
    for a in grid.ARMS:  # away from the arm ends, where the SNR profile is flat
        c = slice(a.start + 420, a.stop - 420)
        snr = sim.flux[:, c] / sim.err[:, c]
        np.testing.assert_allclose(
            snr, np.broadcast_to(sim.truth.snr[:, None], snr.shape), rtol=1e-4
        )


def test_defects():
    r = Realism(bad_pixel_rate=3.0, continuum_error=0.03, sky_residual=5.0)
    sim = mgfast.simulate(100, seed=14, realism=r, with_absorber_fraction=0.0, noise=False)
    bad = sim.err == 0
    assert bad.any(axis=1).mean() > 0.8
    assert np.all(sim.flux[bad] == 0)
    good = ~bad
    assert 0.005 < np.std(sim.flux[good] - 1) < 0.1  # smooth continuum errors of a few per cent


def test_interlopers_in_front_of_the_quasar():
    r = Realism(interloper_rate=4.0)
    sim = mgfast.simulate(300, seed=15, realism=r)
    t = sim.truth
    assert t.n_interlopers.mean() > 1.0
    for k in (1, 2, 3):  # the doublets: CIV, SiIV, AlIII
        m = t.interloper_kind == k
        assert m.any() and np.all(t.interloper_z[m] < np.broadcast_to(t.z_em[:, None], m.shape)[m])


def test_stream_yields_consecutive_batches():
    batches = list(mgfast.simulate_stream(40, seed=16, start=10, stop=110, noise=False))
    assert [len(b) for b in batches] == [40, 40, 20]
    whole = mgfast.simulate(100, seed=16, start=10, noise=False)
    np.testing.assert_array_equal(np.concatenate([b.flux for b in batches]), whole.flux)
    np.testing.assert_array_equal(
        np.concatenate([b.truth.index for b in batches]), np.arange(10, 110)
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(n=-1), "n:"),
        (dict(n=3, snr=0.0), "snr"),
        (dict(n=3, snr=[]), "snr"),
        (dict(n=3, with_absorber_fraction=1.5), "with_absorber_fraction"),
        (dict(n=3, ew_range=(0.0, 1.0)), "ew_range"),
        (dict(n=3, ew_range=(2.0, 1.0)), "ew_range"),
        (dict(n=3, max_absorbers=5), "max_absorbers"),
        (dict(n=3, max_absorbers=0), "max_absorbers"),
        (dict(n=3, realism=Realism(continuum_error=-0.1)), "continuum_error"),
        (dict(n=3, realism=Realism(bad_pixel_rate=-1.0)), "bad_pixel_rate"),
        (dict(n=3, edge_snr_ratio=0.5), "edge_snr_ratio"),
        (dict(n=3, z_em_range=(-1.0, 2.0)), "z_em_range"),
        (dict(n=3, seed=-1), "seed"),
        (dict(n=3, device="tpu"), "device"),
    ],
)
def test_out_of_range_parameters_name_the_allowed_range(kwargs, message):
    with pytest.raises(ValueError, match=message):
        mgfast.simulate(**kwargs)
