"""The grid against its rule, computed here independently, and its conversions."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mgfast import _core, grid

ARM_RANGES = [(3926.0, 4355.0), (5160.0, 5730.0), (6100.0, 6790.0)]


def test_arm_sizes_follow_the_rule():
    # λ_k = lo · exp(k / 20000) for every k with λ_k <= hi
    sizes = [math.floor(math.log(hi / lo) * 20000) + 1 for lo, hi in ARM_RANGES]
    assert sizes == [2075, 2096, 2144]
    assert [a.n_pix for a in grid.ARMS] == sizes
    assert [_core.arm_npix_from_rule(i) for i in range(3)] == sizes
    assert grid.N_PIX == sum(sizes) == 6315
    assert [(a.lo, a.hi) for a in grid.ARMS] == ARM_RANGES


def test_pixel_centres():
    w = grid.wavelength()
    pairs = zip(ARM_RANGES, grid.ARMS, strict=True)
    expected = np.concatenate([lo * np.exp(np.arange(a.n_pix) / 20000.0) for (lo, _), a in pairs])
    np.testing.assert_allclose(w, expected, rtol=1e-14, atol=0)
    for (lo, hi), a in zip(ARM_RANGES, grid.ARMS, strict=True):
        assert w[a.start] == lo
        assert w[a.stop - 1] <= hi < w[a.stop - 1] * math.exp(1 / 20000)


def test_edges_tile_each_arm_and_bracket_centres():
    e, w = grid.edges(), grid.wavelength()
    assert np.all(e[:, 0] < w) and np.all(w < e[:, 1])
    for a in grid.ARMS:
        s = a.slice
        np.testing.assert_allclose(e[s][1:, 0], e[s][:-1, 1], rtol=1e-14)
        # each pixel spans exactly 1/20000 in ln λ
        np.testing.assert_allclose(np.log(e[s][:, 1] / e[s][:, 0]), 1 / 20000, rtol=1e-9)


def test_arm_index_and_edge_distance():
    idx, d = grid.arm_index(), grid.edge_distance()
    for i, a in enumerate(grid.ARMS):
        assert np.all(idx[a.slice] == i)
        k = np.arange(a.n_pix)
        np.testing.assert_array_equal(d[a.slice], np.minimum(k, a.n_pix - 1 - k))


@given(st.floats(0, 1, allow_nan=False), st.integers(0, 2))
def test_wavelength_pixel_round_trip(u, arm):
    # any wavelength covered by the arm's pixels (edges included; the nominal red limit of an arm
    # lies beyond its last pixel's upper edge)
    a = grid.ARMS[arm]
    lam = a.lo * math.exp((u * a.n_pix - 0.5) / 20000)
    pix = grid.pixel_of(lam)
    assert np.isfinite(pix)
    assert abs(float(grid.wavelength_of(pix)) - lam) < 1e-9
    assert grid.arm_of(lam) == arm


def test_round_trip_on_every_centre():
    w = grid.wavelength()
    p = grid.pixel_of(w)
    np.testing.assert_allclose(p, np.arange(grid.N_PIX), atol=1e-8)
    assert np.max(np.abs(grid.wavelength_of(p) - w)) < 1e-9


@pytest.mark.parametrize("lam", [3000.0, 4500.0, 5000.0, 5900.0, 7000.0])
def test_gaps_and_outside_are_nan(lam):
    assert np.isnan(grid.pixel_of(lam))
    assert grid.arm_of(lam) == -1


def test_wavelength_of_outside_is_nan():
    assert np.all(np.isnan(grid.wavelength_of([-1.0, grid.N_PIX + 0.0])))


def test_arrays_are_read_only():
    with pytest.raises(ValueError):
        grid.wavelength()[0] = 0.0


def test_arms_spanned_agrees_with_arm_of():
    rng = np.random.default_rng(3)
    cases = [
        np.geomspace(3850.0, 6870.0, 23164),  # a joined 4MOST spectrum
        np.geomspace(3900.0, 4400.0, 5000),  # blue only
        np.geomspace(4400.0, 5100.0, 100),  # in the gap between blue and green
        np.geomspace(5729.9, 6100.1, 50),  # the green's last and the red's first pixels
        grid.wavelength(),
        np.array([4000.0, np.nan, 6200.0]),  # not increasing: the arm_of way
        np.array([6500.0, 4000.0]),
    ]
    for lo, hi in rng.uniform(3500, 7200, (200, 2)):
        cases.append(np.linspace(min(lo, hi), max(lo, hi) + 1e-3, rng.integers(2, 400)))
    for w in cases:
        a = grid.arm_of(w)
        np.testing.assert_array_equal(grid.arms_spanned(w), np.unique(a[a >= 0]))
