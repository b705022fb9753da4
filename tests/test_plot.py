"""Vetting plots (mgfast.plot): Detections.plot and the gallery of mgfast plot."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

pytest.importorskip("matplotlib")

import mgfast
from mgfast.cli import main


def test_detections_plot_draws_every_candidate():
    sim = mgfast.simulate(4, seed=8, snr=20, with_absorber_fraction=1.0, max_absorbers=2)
    res = mgfast.Detector(model="multi").detect(sim.flux, err=sim.err)
    fig = res.plot(1, sim.flux, err=sim.err)
    n_cand = int(np.sum(res.absorbers.spectrum == 1))
    panels = 2 * min(n_cand, 4)
    # three arms, the probability map under each, two lines per absorber
    assert len(fig.axes) == 3 + 3 + panels
    same = res.plot(1, sim.flux[1], err=sim.err[1])  # row i alone
    assert len(same.axes) == len(fig.axes)
    with pytest.raises(IndexError, match="4 rows"):
        res.plot(7, sim.flux, err=sim.err)
    # the single-absorber model has no map
    one = mgfast.Detector().detect(sim.flux, err=sim.err)
    assert len(one.plot(1, sim.flux, err=sim.err).axes) == 3 + 2 * int(
        np.isfinite(one.wavelength[1])
    )


@pytest.mark.model
def test_cell_probabilities_peak_at_the_absorbers():
    """Detector.cell_probabilities: the map the absorbers are decoded from, one value per
    4-pixel cell, highest at each true absorber's λ2796."""
    sim = mgfast.simulate(6, seed=9, snr=30, with_absorber_fraction=1.0, max_absorbers=2,
                          ew_range=(1.0, 3.0))  # fmt: skip
    det = mgfast.Detector(model="multi")
    pre = mgfast.preprocess(sim.flux, None, sim.err)
    cp = det.cell_probabilities(pre.flux, pre.ivar, pre.pixmask)
    assert cp.shape == (6, -(-mgfast.grid.N_PIX // 4))
    assert np.all((cp >= 0) & (cp <= 1))
    lam = sim.truth.abs_lambda2796
    for i in range(6):
        for x in lam[i][np.isfinite(lam[i])]:
            c = int(mgfast.grid.pixel_of(x) // 4)
            assert cp[i, max(c - 2, 0) : c + 3].sum() > 0.5  # the absorber's cells
    far = np.ones_like(cp, bool)
    for i in range(6):
        for x in lam[i][np.isfinite(lam[i])]:
            c = int(mgfast.grid.pixel_of(x) // 4)
            far[i, max(c - 20, 0) : c + 21] = False
    assert np.median(cp[far]) < 0.01
    with pytest.raises(ValueError, match="multi-absorber"):
        mgfast.Detector().cell_probabilities(pre.flux)


def test_gallery_writes_a_figure_per_detection_and_a_sortable_page(tmp_path, capsys):
    d = tmp_path / "data"
    d.mkdir()
    assert main(["simulate", "8", "-o", str(d / "set.h5"), "--seed", "2"]) == 0
    cat = tmp_path / "c.fits"
    assert main(["detect", str(d), "-o", str(cat)]) == 0
    n_det = int(mgfast.Catalog.read(cat).detected.sum())
    assert n_det > 0
    out = tmp_path / "gallery"
    assert main(["plot", str(cat), "-o", str(out)]) == 0
    pngs = sorted(out.glob("*.png"))
    assert len(pngs) == n_det and all(p.stat().st_size > 10_000 for p in pngs)
    page = (out / "index.html").read_text(encoding="ascii")
    assert page.count("<tr data-p=") == n_det and "sortp()" in page
    assert all(p.name in page for p in pngs)
    # the spectra moved: found again through --spectra, or listed as not drawn
    moved = tmp_path / "moved"
    shutil.move(str(d), str(moved))
    lost = tmp_path / "lost"
    assert main(["plot", str(cat), "-o", str(lost), "--max", "2"]) == 0
    assert "could not be made" in (lost / "index.html").read_text(encoding="ascii")
    again = tmp_path / "again"
    assert main(["plot", str(cat), "-o", str(again), "--spectra", str(moved), "--all"]) == 0
    assert len(list(again.glob("*.png"))) == 8
    assert main(["plot", str(tmp_path / "none.fits"), "-o", str(again)]) == 2
