"""Decoding mgfast_fcn's heatmap head to (probability, λ2796)."""

from __future__ import annotations

import numpy as np

from .. import grid
from .spec import FCN_CELL


def decode_heatmap(
    cells: np.ndarray, offsets: np.ndarray, none: np.ndarray, cell: int = FCN_CELL
) -> tuple[np.ndarray, np.ndarray]:
    """mgfast_fcn's raw outputs to (probability, λ2796): softmax over [cell logits, none logit],
    probability = 1 − p(none); λ2796 at pixel cell · argmax + offset (clipped to its cell). The
    CPU backend decodes the same way in C++ (heatmap_decode in src/cpu/backend_cpu.cpp)."""
    cells = np.asarray(cells, np.float64)
    none = np.asarray(none, np.float64).reshape(-1)
    m = np.maximum(cells.max(axis=1), none)
    denom = np.exp(cells - m[:, None]).sum(axis=1) + np.exp(none - m)
    prob = 1.0 - np.exp(none - m) / denom
    best = cells.argmax(axis=1)
    off = np.take_along_axis(np.asarray(offsets, np.float64), best[:, None], axis=1)[:, 0]
    off = np.clip(off, 0.0, cell - 1e-3)
    pix = np.clip(cell * best + off, 0.0, grid.N_PIX - 1.0)
    return prob.astype(np.float32), grid.wavelength_of(pix).astype(np.float32)
