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


def test_fitted_batches_go_through_the_continuum_fit():
    """--fitted-fraction: kinds 4 and 5 are unnormalised sky spectra normalised by mgfast's own
    fit (5 given z_em); the other kinds, and every batch without it, are unchanged."""
    import collections

    from mgfast_train.data import FITTED_KINDS, batch_kind, fitted_mode, model_input
    from mgfast_train.data import simulate_kwargs as kwargs_of

    plain, fitted = DataConfig(mix="sky"), DataConfig(mix="sky", fitted_fraction=0.5)
    kinds = collections.Counter(batch_kind(s, fitted) for s in range(4000))
    assert kinds[4] > 400 and kinds[5] > 400 and kinds[3] > 800
    for s in range(4000):  # only some kind-3 batches change
        k0, k1 = batch_kind(s, plain), batch_kind(s, fitted)
        assert k0 == k1 or (k0 == 3 and k1 in FITTED_KINDS)
    assert kwargs_of(4, fitted)["realism"].unnormalised
    assert not kwargs_of(3, fitted)["realism"].unnormalised
    sim = mgfast.simulate(6, seed=3, z_em_range=(2.5, 3.5), **kwargs_of(5, fitted))
    for kind in FITTED_KINDS:
        x = model_input(sim, fitted=fitted_mode(kind))
        assert x.shape == (6, grid.N_PIX) and np.all(np.isfinite(x))
        assert 0.7 < np.median(x) < 1.2  # normalised by the fit
    # given z_em, the forest is fitted rather than masked (masked pixels are filled with 1)
    blue = slice(grid.ARMS[0].start, grid.ARMS[0].stop)
    masked = [np.mean(model_input(sim, fitted=f)[:, blue] == 1.0) for f in (1, 2)]
    assert masked[1] < masked[0]
