"""Continuum normalisation of synthetic quasars: accuracy, and that it keeps absorption lines."""

from __future__ import annotations

import numpy as np
import pytest

import mgfast
from mgfast import PixelFlag, SpectrumFlag, grid
from mgfast.atomic import MGII_2796, MGII_2803
from mgfast.preprocess import ContinuumOptions
from mgfast.testing import away_from_line_cores, synthetic_quasar

from conftest import devices


def true_continuum_on_grid(q):
    return mgfast.preprocess(q.continuum.astype(np.float32), q.wave, resolution=q.resolution).flux


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("z_em", [0.9, 1.25, 2.0])
def test_continuum_of_a_synthetic_quasar_at_snr10(device, z_em):
    q = synthetic_quasar(40, z_em=z_em, snr=10.0, seed=11)
    out = mgfast.preprocess(
        q.flux, q.wave, q.err, resolution=q.resolution, normalised=False,
        return_continuum=True, device=device,
    )  # fmt: skip
    assert not np.any(out.flags & SpectrumFlag.CONTINUUM_FAILED)
    rel = out.continuum / true_continuum_on_grid(q) - 1
    away = away_from_line_cores(z_em, q.z_abs)
    # systematic error (median over noise realisations) within 2 % everywhere away from line
    # cores, and a single noisy spectrum within 2 % at 95 % of those pixels (the rest is noise:
    # see docs/preprocessing.md for the full distribution)
    assert np.max(np.abs(np.median(rel, axis=0))[away]) < 0.02
    assert np.percentile(np.abs(rel[:, away]), 95) < 0.02


@pytest.mark.parametrize("z_em", [0.9, 1.25, 2.0])
def test_normalisation_keeps_a_weak_doublet(z_em):
    # EW2796 = 0.3 Å: the EW measured after fitting the continuum equals, within 10 %, the EW
    # of the same noisy spectrum divided by the true continuum
    q = synthetic_quasar(40, z_em=z_em, z_abs=0.95, ew2796_rest=0.3, snr=10.0, seed=12)
    fit = mgfast.preprocess(q.flux, q.wave, q.err, resolution=q.resolution, normalised=False)
    true = mgfast.preprocess(q.flux / q.continuum, q.wave, q.err / q.continuum,
                             resolution=q.resolution)  # fmt: skip
    w, e = grid.wavelength(), grid.edges()
    dw = e[:, 1] - e[:, 0]
    for line in (MGII_2796, MGII_2803):
        win = np.abs(w - line.wavelength * (1 + q.z_abs)) < 0.8
        ew_fit = ((1 - fit.flux[:, win]) * dw[win]).sum(1)
        ew_true = ((1 - true.flux[:, win]) * dw[win]).sum(1)
        assert np.all(np.abs(ew_fit / ew_true - 1) < 0.10), line.name


def test_strong_doublet_is_not_eaten():
    # EW2796 = 3 Å spread over 350 km/s (depth 0.86), noiseless: the continuum under it must
    # stay within 2 % and the doublet's EW within 2 %
    q = synthetic_quasar(
        1, z_em=1.25, z_abs=0.95, ew2796_rest=3.0, snr=1e6, absorber_fwhm_kms=350.0, seed=0
    )
    out = mgfast.preprocess(q.flux, q.wave, q.err, resolution=q.resolution, normalised=False,
                            return_continuum=True)  # fmt: skip
    c_true = true_continuum_on_grid(q)
    w = grid.wavelength()
    under = np.zeros(w.size, bool)
    for line in (MGII_2796, MGII_2803):
        under |= np.abs(w - line.wavelength * 1.95) < 10
    assert np.max(np.abs(out.continuum[0, under] / c_true[under] - 1)) < 0.02
    dw = np.diff(grid.edges(), axis=1)[:, 0]
    ew = ((1 - out.flux[0, under]) * dw[under]).sum() / 1.95
    assert abs(ew / (3.0 + 3.0 / 1.2) - 1) < 0.02


def test_continuum_without_errors_uses_the_scatter():
    q = synthetic_quasar(5, z_em=1.25, snr=10.0, seed=13)
    out = mgfast.preprocess(q.flux, q.wave, resolution=q.resolution, normalised=False,
                            return_continuum=True)  # fmt: skip
    rel = out.continuum / true_continuum_on_grid(q) - 1
    assert np.percentile(np.abs(rel[:, away_from_line_cores(1.25, q.z_abs)]), 95) < 0.025
    assert np.all(out.flags & SpectrumFlag.NO_ERRORS)


@pytest.mark.parametrize("device", devices())
def test_an_alternating_fit_ends_where_max_iter_says(device):
    # About one arm in eight alternates between two masks (a pixel flipping at a clipping
    # threshold); the fit stops once it sees that, on the mask that max_iter ends on: so the
    # result keeps max_iter's parity (15 like 17, 16 like 18), and 15 and 16 differ there.
    realism = mgfast.Realism(**{**mgfast.Realism.survey().__dict__, "unnormalised": True})
    sim = mgfast.simulate(64, seed=21, realism=realism, snr=[3, 10])
    cont = {
        k: mgfast.preprocess(
            sim.flux,
            None,
            sim.err,
            normalised=False,
            return_continuum=True,
            continuum=ContinuumOptions(max_iter=k),
            device=device,
        ).continuum
        for k in (15, 16, 17, 18)
    }

    def same(a: int, b: int) -> np.ndarray:
        return np.all(cont[a] == cont[b], axis=1)

    # alternating spectra: 15 and 16 differ, 15 is 17 and 16 is 18 (a fit stopped at the
    # other mask, or one that ran on, would show none of these)
    alternating = ~same(15, 16) & same(15, 17) & same(16, 18)
    assert alternating.sum() >= 3
    # and every other spectrum either converged by 15 or still changes (slow convergence)
    assert np.all(alternating | same(15, 16) | ~same(15, 17))


# ---- spikes: cosmic rays and hot pixels the errors do not know ----------------------------


def _spiked(n: int, seed: int, frac: float = 0.01, factor: float = 100.0):
    """Unnormalised simulated spectra at SNR 20, each with a strong MgII absorber, and the same
    spectra with ``frac`` of their pixels set to ``factor`` times the continuum (errors as they
    were): (simulation, spiked flux, boolean map of the spikes)."""
    kw = dict(seed=seed, snr=20, with_absorber_fraction=1.0, ew_range=(1.5, 3.0),
              realism=mgfast.Realism(unnormalised=True))  # fmt: skip
    sim = mgfast.simulate(n, **kw)
    quiet = mgfast.simulate(n, noise=False, return_clean=True, **kw)  # continuum x transmission
    rng = np.random.default_rng(seed)
    hit = np.zeros(sim.flux.shape, bool)
    for i in range(n):
        free = np.flatnonzero(quiet.clean[i] > 0.5)  # the continuum is known there
        hit[i, rng.choice(free, int(frac * grid.N_PIX), replace=False)] = True
    flux = sim.flux.copy()
    flux[hit] = factor * quiet.flux[hit] / quiet.clean[hit]
    return sim, flux, hit


@pytest.mark.model
@pytest.mark.parametrize("device", devices())
def test_cosmic_rays_leave_the_continuum_and_the_absorber(device):
    # 1 % of the pixels at 100x the continuum used to make nearly every arm CONTINUUM_FAILED
    # (the least-squares fit through them sits far above the continuum, and the clipping then
    # rejects the continuum itself as absorption); now they are found, left out and masked, and
    # the absorber is found as without them.
    sim, flux, hit = _spiked(32, seed=31)
    old = mgfast.preprocess(flux, None, sim.err, normalised=False, allow_empty=True,
                            continuum=ContinuumOptions(spike_sigma=0), device=device)  # fmt: skip
    assert np.mean((old.flags & SpectrumFlag.CONTINUUM_FAILED) != 0) > 0.9

    pre = mgfast.preprocess(flux, None, sim.err, normalised=False, device=device)
    assert not np.any(pre.flags & (SpectrumFlag.CONTINUUM_FAILED | SpectrumFlag.ALL_MASKED))
    spike = (pre.pixmask & PixelFlag.SPIKE) != 0
    assert np.array_equal(spike, hit)  # every spike masked as one, and nothing else
    assert np.all(np.isfinite(pre.flux)) and pre.flux.max() < 2.0

    if device == "cpu":
        det = mgfast.Detector()
        clean = det.detect(sim.flux, err=sim.err, normalised=False)
        res = det.detect(flux, err=sim.err, normalised=False)
        assert np.all(res.detected) and np.all(clean.detected)
        assert np.max(np.abs(res.probability - clean.probability)) < 1e-3
        assert np.max(np.abs(res.wavelength - sim.truth.lambda2796)) < 3.0


def test_cosmic_rays_without_errors():
    # without an error array the spikes stand out against the noise of first differences
    # (a few spikes at an arm's very start can still lift the fit there: those stretches, which
    # would otherwise be divided by a continuum twice too high, are now masked as unsupported)
    _, flux, hit = _spiked(8, seed=32)
    pre = mgfast.preprocess(flux, None, None, normalised=False)
    assert not np.any(pre.flags & SpectrumFlag.ALL_MASKED)
    failed = (pre.pixmask & PixelFlag.CONTINUUM_FAILED) != 0
    assert failed.mean() < 0.01
    assert np.array_equal((pre.pixmask & PixelFlag.SPIKE) != 0, hit & ~failed)
    kept = pre.pixmask == 0
    assert abs(np.median(pre.flux[kept]) - 1.0) < 0.02


@pytest.mark.parametrize(
    "realism",
    [
        mgfast.Realism(unnormalised=True),
        mgfast.Realism(unnormalised=True, forest=True),  # transmission peaks are not spikes
        mgfast.Realism(**{**mgfast.Realism.survey().__dict__, "unnormalised": True}),
    ],
    ids=["idealised", "forest", "survey"],
)
def test_spike_rejection_changes_nothing_without_spikes(realism):
    # Spectra without cosmic rays come out to the bit as without the spike rejection (paper SNRs
    # 3-50, absorbers up to 5 Å, the Lyman-alpha forest, sky residuals and bad pixels): nothing
    # is flagged, so the first fit, and every later one, is the same.
    sim = mgfast.simulate(200, seed=8, realism=realism)
    kw = dict(normalised=False, allow_empty=True, return_continuum=True)
    new = mgfast.preprocess(sim.flux, None, sim.err, **kw)
    off = ContinuumOptions(spike_sigma=0)
    old = mgfast.preprocess(sim.flux, None, sim.err, continuum=off, **kw)
    assert not np.any(new.pixmask & PixelFlag.SPIKE)
    for k in ("flux", "ivar", "continuum", "pixmask", "flags"):
        np.testing.assert_array_equal(getattr(new, k), getattr(old, k), err_msg=k)


def _breaks(seed: int, n: int = 12) -> tuple:  # type: ignore[type-arg]
    """Unnormalised SNR-10 sightlines with an absorber each; in copies, the blue arm below a
    Lyman limit (flux: noise about zero) and the first 40 % of the red arm a saturated break."""
    sim = mgfast.simulate(n, seed=seed, snr=10, with_absorber_fraction=1.0,
                          realism=mgfast.Realism(unnormalised=True))  # fmt: skip
    rng = np.random.default_rng(seed)
    blue, red = grid.ARMS[0], grid.ARMS[2]
    ll = sim.flux.copy()
    ll[:, blue.start : blue.stop] = (
        rng.normal(0, 1, (n, blue.stop - blue.start)) * sim.err[:, blue.start : blue.stop]
    )
    brk = sim.flux.copy()
    cut = red.start + int(0.4 * (red.stop - red.start))
    brk[:, red.start : cut] = rng.normal(0, 1, (n, cut - red.start)) * sim.err[:, red.start : cut]
    return sim, ll, brk, cut


def test_an_arm_without_flux_is_masked_not_searched():
    # Below a Lyman limit the flux is noise about zero: a continuum fitted to it (positive by
    # chance) once turned that noise into deep "absorption" and a detection at p = 1 on a real
    # spectrum. A continuum below its own noise is not trusted: the arm is masked.
    sim, ll, _, _ = _breaks(41)
    blue = grid.ARMS[0]
    pre = mgfast.preprocess(ll, None, sim.err, normalised=False)
    failed = (pre.pixmask[:, blue.start : blue.stop] & PixelFlag.CONTINUUM_FAILED) != 0
    assert failed.all()
    assert np.all(pre.flags & SpectrumFlag.CONTINUUM_FAILED)
    res = mgfast.Detector().detect(ll, err=sim.err, normalised=False)
    assert not np.any(res.detected & (res.wavelength < blue.hi))


@pytest.mark.model
def test_a_break_in_an_arm_masks_the_break_and_keeps_the_rest():
    # A saturated stretch (dense Lyman-alpha forest, a Lyman-limit break) in part of an arm used
    # to fail the whole arm's fit (the spline dips to zero in it), losing the clean part and any
    # MgII there. Now only pixels without support on both sides, or with a continuum below their
    # noise, are masked.
    sim, _, brk, cut = _breaks(42, n=48)
    red = grid.ARMS[2]
    pre = mgfast.preprocess(brk, None, sim.err, normalised=False)
    masked = (pre.pixmask & PixelFlag.CONTINUUM_FAILED) != 0
    assert masked[:, red.start : red.start + int(0.7 * (cut - red.start))].all()
    clean = masked[:, cut + 200 : red.stop]
    assert clean.mean() < 0.01
    kept = pre.pixmask[:, cut + 200 : red.stop] == 0
    assert abs(np.median(pre.flux[:, cut + 200 : red.stop][kept]) - 1.0) < 0.03
    # absorbers in the clean part are found as without the break
    lam = sim.truth.lambda2796
    in_clean = lam > grid.wavelength()[cut + 200]
    res = mgfast.Detector().detect(brk, err=sim.err, normalised=False)
    ref = mgfast.Detector().detect(sim.flux, err=sim.err, normalised=False)
    found = res.detected & (np.abs(res.wavelength - lam) < 5)
    found_ref = ref.detected & (np.abs(ref.wavelength - lam) < 5)
    assert in_clean.sum() >= 2
    assert found[in_clean].sum() >= found_ref[in_clean].sum()


def forest_quasars(n: int, seed: int):
    """Sky-mode spectra (with a Lyα forest) at z_em 2.3-3.6 times a synthetic quasar continuum."""
    from mgfast.simulate import Realism
    from mgfast.testing import quasar_continuum

    sim = mgfast.simulate(n, seed=seed, snr=[5, 10, 20], realism=Realism.sky(),
                          with_absorber_fraction=0.0, z_em_range=(2.3, 3.6))  # fmt: skip
    cont = np.stack([quasar_continuum(grid.wavelength(), z) for z in sim.truth.z_em])
    cont = cont.astype(np.float32)
    return sim.flux * cont, sim.err * cont, cont, sim.truth.z_em


@pytest.mark.parametrize("device", devices())
def test_the_forest_is_fitted_by_mean_flux_regulation_given_z_em(device):
    """Without z_em the clipping finds no continuum between the forest's lines: much of the
    forest is masked and the fit sits low. With it the forest keeps its pixels and the fit is
    unbiased (docs/preprocessing.md, "The Lyman-α forest")."""
    flux, err, cont, z_em = forest_quasars(60, seed=808)
    wave = grid.wavelength()[None, :]
    forest = (wave > 1040 * (1 + z_em[:, None])) & (wave < 1200 * (1 + z_em[:, None]))
    assert forest.sum() > 20_000
    out = {}
    for given in (None, z_em):
        pre = mgfast.preprocess(flux, None, err, normalised=False, return_continuum=True,
                                z_em=given, device=device)  # fmt: skip
        ok = forest & (pre.pixmask == 0)
        out[given is None] = ((pre.pixmask[forest] != 0).mean(),
                              np.median(pre.continuum[ok] / cont[ok]))  # fmt: skip
    (masked_without, ratio_without), (masked_with, ratio_with) = out[True], out[False]
    assert masked_without > 0.15 and ratio_without < 0.99
    assert masked_with < 0.05 and abs(ratio_with - 1.0) < 0.015


def test_z_em_unknown_or_without_forest_changes_nothing():
    flux, err, _, z_em = forest_quasars(8, seed=809)
    plain = mgfast.preprocess(flux, None, err, normalised=False, return_continuum=True)
    for z in (np.full(8, np.nan), np.full(8, 0.5)):  # unknown; a forest blueward of the arms
        pre = mgfast.preprocess(flux, None, err, normalised=False, return_continuum=True, z_em=z)
        np.testing.assert_array_equal(pre.continuum, plain.continuum)
        np.testing.assert_array_equal(pre.pixmask, plain.pixmask)
    # normalised spectra fit no continuum: z_em changes nothing there either
    a = mgfast.preprocess(flux / 1e3, None, err / 1e3, z_em=z_em)
    b = mgfast.preprocess(flux / 1e3, None, err / 1e3)
    np.testing.assert_array_equal(a.flux, b.flux)


@pytest.mark.parametrize("bad", [-0.1, np.inf, "x"])
def test_preprocess_refuses_a_bad_z_em(bad):
    flux, err, _, _ = forest_quasars(2, seed=810)
    with pytest.raises(ValueError, match="z_em"):
        mgfast.preprocess(flux, None, err, normalised=False, z_em=bad)
    with pytest.raises(ValueError, match="z_em"):
        mgfast.preprocess(flux, None, err, normalised=False, z_em=[2.5, 2.5, 2.5])


def test_forest_penalty_is_checked():
    with pytest.raises(ValueError, match="forest_penalty"):
        mgfast.preprocess(np.ones((1, grid.N_PIX), np.float32), normalised=False,
                          continuum=ContinuumOptions(forest_penalty=0.0))  # fmt: skip
