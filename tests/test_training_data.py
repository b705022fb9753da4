"""Training data (mgfast_train.data): batch k is the same spectra however the batches are made,
and the multi-absorber targets put each absorber in its cell with its offset and widths."""

from __future__ import annotations

import numpy as np
import pytest

import mgfast
from mgfast import grid
from mgfast_train.data import (
    N_CELLS,
    DataConfig,
    batches,
    fcn_targets,
    joint_targets,
    multi_targets,
)


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


def test_joint_targets_give_the_summary_nothing_to_learn_from_multi_absorber_spectra():
    """mgfast_joint: one-absorber batches carry both heads' targets; multi-absorber batches the
    maps' and class/cell -1, which the summary's losses skip."""
    one = mgfast.simulate(20, seed=3, with_absorber_fraction=0.5)
    cls, off, cells, reg = joint_targets(one)
    want_cls, want_off = fcn_targets(one)
    np.testing.assert_array_equal(cls, want_cls)
    np.testing.assert_array_equal(off, want_off)
    np.testing.assert_array_equal(cells, multi_targets(one)[0])
    many = mgfast.simulate(20, seed=4, max_absorbers=4, with_absorber_fraction=0.9)
    cls, off, cells, reg = joint_targets(many, summary=False)
    assert (cls == -1).all() and (off[:, 0] == -1).all()
    np.testing.assert_array_equal(reg, multi_targets(many)[1])
    for summary, g in ((True, DataConfig(seed=2)), (False, DataConfig(seed=2, max_absorbers=4))):
        gen = batches(g, 6, 0, "mgfast_joint")
        try:
            x, y = next(gen)
        finally:
            gen.close()
        assert x.shape == (6, grid.N_PIX) and len(y) == 4
        assert (y[0] >= 0).all() == summary and (y[0] == -1).all() != summary
