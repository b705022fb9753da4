"""The held-out mock generator (mgfast_train.heldout_mock): its grid, its truth and its noise.

The generator shares no code with mgfast's simulator; mgfast is used here only to check that the
grid it defines for itself is the package's."""

from __future__ import annotations

import numpy as np
import pytest

from mgfast_train import heldout_mock as hm


def test_grid_is_mgfasts():
    import mgfast

    assert hm.N_PIX == 6315
    np.testing.assert_allclose(hm.wavelength(), mgfast.grid.wavelength(), rtol=1e-13, atol=0)
    for (name, lo, hi), n, arm in zip(hm.ARMS, hm.ARM_NPIX, mgfast.grid.ARMS, strict=True):
        assert (name, lo, hi, n) == (arm.name, arm.lo, arm.hi, arm.n_pix)


@pytest.fixture(scope="module")
def weak_set() -> dict:
    """Idealised absorbers narrow enough that the two lines' absorption does not meet."""
    return hm.generate(
        40, seed=11, snr=20, absorber_fraction=1.0, ew_range=(0.05, 1.2), return_noiseless=True
    )


@pytest.mark.parametrize("line", [0, 1])
def test_noiseless_profile_integrates_to_the_true_ew(weak_set: dict, line: int):
    t, f, wave = weak_set["truth"], weak_set["noiseless"], weak_set["wave"]
    lam1 = t["lambda2796"]
    lam2 = lam1 * hm.MGII[1].lam / hm.MGII[0].lam
    mid = 0.5 * (lam1 + lam2)
    dlam = wave / hm.R_GRID  # pixel widths (uniform in ln λ)
    keep = t["dv_extent"] < 200.0
    assert keep.sum() >= 20
    for i in np.flatnonzero(keep):
        if line == 0:
            m = (wave > lam1[i] - 12.0) & (wave < mid[i])
            true = t["ew2796"][i]
        else:
            m = (wave >= mid[i]) & (wave < lam2[i] + 12.0)
            true = t["ew2803"][i]
        ew = np.sum((1.0 - f[i, m].astype(np.float64)) * dlam[m]) / (1.0 + t["z"][i])
        assert ew == pytest.approx(true, rel=0.01, abs=2e-4), (i, t["ew2796"][i])


def test_truth_ew_is_the_drawn_one_and_flat(weak_set: dict):
    ew = weak_set["truth"]["ew2796"]
    assert np.all((ew >= 0.05 - 1e-9) & (ew <= 1.2 + 1e-9))


def test_deterministic_in_seed_and_independent_of_chunking():
    a = hm.generate(10, family="realistic", seed=7)
    b = hm.generate(10, family="realistic", seed=7, chunk=3)
    c = hm.generate(10, family="realistic", seed=8)
    np.testing.assert_array_equal(a["flux"], b["flux"])
    np.testing.assert_array_equal(a["err"], b["err"])
    for k in a["truth"]:
        np.testing.assert_array_equal(a["truth"][k], b["truth"][k])
    assert not np.array_equal(a["flux"], c["flux"])
    assert a["flux"].dtype == np.float32 and a["err"].dtype == np.float32
    assert a["flux"].shape == (10, hm.N_PIX) and np.isfinite(a["flux"]).all()


def test_noise_matches_the_snr_at_the_arm_centres():
    d = hm.generate(150, seed=3, snr=10, absorber_fraction=0.0, return_noiseless=True)
    resid = d["flux"].astype(np.float64) - d["noiseless"]
    for start, n in zip(hm.ARM_START, hm.ARM_NPIX, strict=True):
        c = slice(start + n // 2 - 60, start + n // 2 + 60)
        assert resid[:, c].std() == pytest.approx(0.1, rel=0.02)
        np.testing.assert_allclose(d["err"][:, c], 0.1, rtol=1e-6)
    # the noise grows towards the arm ends
    assert np.all(d["err"][:, 0] > 0.1 * 1.4) and np.all(d["err"][:, -1] > 0.1 * 1.4)
    assert set(np.unique(hm.generate(30, seed=4)["truth"]["snr"])) <= set(hm.SNRS)


def test_doublet_ratio_strong_near_one_weak_near_two():
    rng = np.random.default_rng(5)
    ratio = {}
    for ew in (0.05, 4.0):
        r = []
        for _ in range(8):
            t = hm.mgii_system(np.ones(hm.N_FINE), rng, 5400.0, ew)
            assert t["ew2796"] == pytest.approx(ew, rel=1e-6)
            r.append(t["ew2796"] / t["ew2803"])
        ratio[ew] = np.median(r)
    assert 1.0 <= ratio[4.0] < 1.25
    assert 1.7 < ratio[0.05] <= 2.01


def test_two_absorbers_are_40_angstrom_apart():
    d = hm.generate(25, seed=9, n_absorbers=2)
    t = d["truth"]
    lam = t["lambda2796"]
    assert lam.shape == (25, 2) and np.isfinite(lam).all() and t["has_absorber"].all()
    assert np.all(np.diff(lam, axis=1) >= hm.MIN_SEPARATION)
    assert np.all((t["ew2796"] >= 0.5) & (t["ew2796"] <= 4.0))
    assert np.all(t["snr"] == 20)
    # both lines of each absorber >= 25 Å inside one arm
    ratio = hm.MGII[1].lam / hm.MGII[0].lam
    inside = np.zeros(lam.shape, bool)
    for _, lo, hi in hm.ARMS:
        inside |= (lam >= lo + 25.0) & (lam * ratio <= hi - 25.0)
    assert inside.all()


def test_half_the_single_absorber_set_has_one():
    t = hm.generate(30, seed=2)["truth"]
    assert t["has_absorber"].sum() == 15
    assert np.isnan(t["lambda2796"][~t["has_absorber"]]).all()


def test_forest_follows_the_mean_transmission():
    """The green arm's Lyα-only forest of z_em = 3.6 quasars against exp(−τ_eff)."""
    rng = np.random.default_rng(1)
    a = 1
    s, n = hm.FINE_START[a], hm.FINE_LEN[a]
    lnlam = hm._lnlam_of_fine(a, np.arange(n))
    lam = np.exp(lnlam)
    m = (lam > 5170.0) & (lam < hm.LYA.lam * 4.6 - 20.0)
    trans = []
    for _ in range(10):
        tau = np.zeros(hm.N_FINE)
        hm._forest(tau, rng, 3.6)
        trans.append(np.exp(-tau[s : s + n][m]))
    expect = np.exp(-hm.tau_eff(lam[m] / hm.LYA.lam - 1.0)).mean()
    assert np.mean(trans) == pytest.approx(expect, abs=0.04)
