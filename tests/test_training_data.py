"""Training data (training/data.py): batch k is the same spectra however the batches are made,
and the multi-absorber targets put each absorber in its cell with its offset and widths."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "training"))

from data import N_CELLS, DataConfig, batches, multi_targets

import mgfast
from mgfast import grid


@pytest.mark.parametrize("arch", ["mgfast_fcn", "mgfast_multi"])
def test_batch_k_does_not_depend_on_grouping_or_producers(arch):
    cfg = DataConfig(seed=5, max_absorbers=4 if arch == "mgfast_multi" else 1)
    one = batches(cfg, 8, 3, arch)
    many = batches(cfg, 8, 3, arch, producers=2, group=3, threads=2)
    try:
        for _ in range(7):
            (xa, ya), (xb, yb) = next(one), next(many)
            np.testing.assert_array_equal(xa, xb)
            for a, b in zip(ya, yb, strict=True):
                np.testing.assert_array_equal(a, b)
    finally:
        one.close()
        many.close()


def test_multi_targets_mark_every_absorber():
    sim = mgfast.simulate(40, seed=8, max_absorbers=4, with_absorber_fraction=0.9)
    cells, reg = multi_targets(sim)
    t = sim.truth
    assert cells.shape == (40, N_CELLS) and reg.shape == (40, N_CELLS, 4)
    assert cells.sum() == np.isfinite(t.abs_z).sum() == reg[..., 0].sum()
    for i, k in zip(*np.nonzero(np.isfinite(t.abs_z)), strict=True):
        pix = grid.pixel_of(t.abs_lambda2796[i, k])
        c = int(pix // 4)
        assert cells[i, c] == 1
        assert reg[i, c, 1] == pytest.approx(pix - 4 * c, abs=1e-4)
        assert reg[i, c, 2] == pytest.approx(np.log(t.abs_ew2796[i, k]), abs=1e-5)
        assert reg[i, c, 3] == pytest.approx(np.log(t.abs_ew2803[i, k]), abs=1e-5)
