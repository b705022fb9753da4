"""The spectrum sets of the pull evaluation (training/pulls.py) and of the error model's fit
(training/calibrate_errors.py), and the matching of a detector's absorbers to their truth."""

from __future__ import annotations

import numpy as np

import mgfast
from mgfast import grid
from mgfast.absorbers import match

from .heldout_mock import generate

SNRS = (3, 5, 10, 20, 30, 40, 50)


C_KMS = 299792.458


def absorption_centroid(clean: np.ndarray, lam: np.ndarray) -> np.ndarray:
    """The absorbed-flux-weighted mean wavelength of each absorber's λ2796 line, (N, M) like lam
    (NaN where it is), measured on the noiseless spectra ``clean`` (N, n_pix) from 600 km/s
    blueward of lam to the doublet's midpoint (+385 km/s): the catalogue's definition of a
    system's position (the sky mode places its systems so; the paper mode's λ2796 is the nominal
    redshift of components drawn around it, which can differ by a few tenths of an Å)."""
    wave = grid.wavelength()
    out = np.full(lam.shape, np.nan)
    for i, j in zip(*np.nonzero(np.isfinite(lam)), strict=True):
        lo = lam[i, j] * np.exp(-600.0 / C_KMS)
        hi = lam[i, j] * np.exp(385.0 / C_KMS)
        sel = (wave > lo) & (wave < hi)
        a = np.clip(1.0 - clean[i, sel], 0.0, None)
        if a.sum() > 0:
            out[i, j] = float(np.sum(a * wave[sel]) / np.sum(a))
    return out


def sets(n: int, seed_base: int = 5000, heldout: bool = True):  # type: ignore[no-untyped-def]
    """(name, SNR, flux, err, truth λ (N, M), EW2796 (N, M), EW2803 (N, M), in-forest (N, M) or
    None), n spectra per SNR; the simulator's seeds seed_base + 100 (200) + SNR (5000: this
    script's; training/calibrate_errors.py fits on 6000's). The truth λ2796 is every set's
    absorption centroid (absorption_centroid for the simulator's idealised set)."""
    for s in SNRS:
        sim = mgfast.simulate(n, seed=seed_base + 100 + s, snr=s, with_absorber_fraction=0.8,
                              max_absorbers=4, return_clean=True)  # fmt: skip
        t = sim.truth
        assert sim.clean is not None
        lam_c = absorption_centroid(sim.clean, t.abs_lambda2796)
        yield ("simulator, idealised", s, sim.flux, sim.err, lam_c, t.abs_ew2796,
               t.abs_ew2803, None)  # fmt: skip
        sim = mgfast.simulate(n, seed=seed_base + 200 + s, snr=s, with_absorber_fraction=0.8,
                              max_absorbers=4, kinematics="sky",
                              realism=mgfast.Realism.sky())  # fmt: skip
        t = sim.truth
        yield ("simulator, sky mode", s, sim.flux, sim.err, t.abs_lambda2796, t.abs_ew2796,
               t.abs_ew2803, None)  # fmt: skip
        if not heldout:
            continue
        for family, seed in (("idealised", 90011), ("realistic", 90012)):
            d = generate(n, family=family, seed=[seed, s], snr=s, absorber_fraction=0.8)
            t = {k: np.asarray(v, np.float64)[:, None] for k, v in d["truth"].items()
                 if np.ndim(v) == 1}  # fmt: skip
            forest = t["in_forest"].astype(bool) if family == "realistic" else None
            yield (f"held-out, {family}", s, d["flux"], d["err"], t["lambda2796_centroid"],
                   t["ew2796"], t["ew2803"], forest)  # fmt: skip


def matched(det: mgfast.Detector, flux: np.ndarray, err: np.ndarray, lam: np.ndarray):  # type: ignore[no-untyped-def]
    """det on the spectra: its Detections, the absorbers at or above its threshold, which of
    them match a true λ2796 within 5 Å, and the (spectrum, column) of their true absorber."""
    res = det.detect(flux, err=err)
    ab = res.absorbers
    assert ab is not None
    ab = ab.select(ab.probability >= res.absorber_threshold)
    col, _ = match(ab.spectrum, ab.lambda2796, lam)
    ok = col >= 0
    return res, ab, ok, ab.spectrum[ok], col[ok]
