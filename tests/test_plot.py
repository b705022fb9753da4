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
    assert len(fig.axes) == 3 + panels  # three arms, two lines per absorber
    same = res.plot(1, sim.flux[1], err=sim.err[1])  # row i alone
    assert len(same.axes) == len(fig.axes)
    with pytest.raises(IndexError, match="4 rows"):
        res.plot(7, sim.flux, err=sim.err)


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
