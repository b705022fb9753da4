"""Preprocessing workloads shared by the pytest-benchmark suite and the throughput script."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from mgfast import grid
from mgfast.testing import synthetic_quasar


@dataclass
class Case:
    name: str
    description: str
    args: tuple
    kwargs: dict[str, Any]
    n: int


def cases(n: int = 512) -> list[Case]:
    rng = np.random.default_rng(0)
    on_grid = (1 + 0.1 * rng.standard_normal((n, grid.N_PIX))).astype(np.float32)
    on_err = np.full_like(on_grid, 0.1)
    q20 = synthetic_quasar(n, resolution=20000.0, pix_per_resel=2.5, seed=1)
    q45 = synthetic_quasar(n, resolution=45000.0, pix_per_resel=3.0, seed=2)
    return [
        Case(
            "fast-path",
            "normalised, on the grid: mask and fill only",
            (on_grid, None, on_err),
            {},
            n,
        ),
        Case(
            "rebin+continuum",
            f"R=20000, {q20.wave.size} input pixels: rebin, continuum-normalise",
            (q20.flux, q20.wave, q20.err),
            {"resolution": 20000.0, "normalised": False},
            n,
        ),
        Case(
            "degrade+rebin+continuum",
            f"R=45000, {q45.wave.size} input pixels: degrade, rebin, continuum-normalise",
            (q45.flux, q45.wave, q45.err),
            {"resolution": 45000.0, "normalised": False},
            n,
        ),
    ]
