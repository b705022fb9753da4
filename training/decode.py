"""Turns network outputs into per-spectrum probability and λ2796 (Å), for every architecture.
The same decoding is implemented in the engine (C++); evaluate.py and the tests compare them."""

from __future__ import annotations

import numpy as np

from mgfast import grid


def decode_fcn(
    cells: np.ndarray, offsets: np.ndarray, none: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Softmax over [cell logits, none logit]: probability = 1 − p(none); λ2796 at the most
    probable cell's pixel 4·cell + offset (clipped to the cell), on the grid's wavelengths."""
    cells = np.asarray(cells, np.float64)
    none = np.asarray(none, np.float64).reshape(-1)
    m = np.maximum(cells.max(axis=1), none)
    denom = np.exp(cells - m[:, None]).sum(axis=1) + np.exp(none - m)
    prob = 1.0 - np.exp(none - m) / denom
    best = cells.argmax(axis=1)
    off = np.clip(np.take_along_axis(offsets, best[:, None], axis=1)[:, 0], 0.0, 3.999)
    pix = np.clip(4.0 * best + off, 0.0, grid.N_PIX - 1.0)
    return prob.astype(np.float32), grid.wavelength_of(pix).astype(np.float32)


def decode(arch: str, outputs) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[no-untyped-def]
    if arch == "mgfast_fcn":
        return decode_fcn(*outputs)
    prob, lam = outputs
    return np.asarray(prob).reshape(-1), np.asarray(lam).reshape(-1)
