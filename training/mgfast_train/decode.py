"""Turns network outputs into per-spectrum probability and λ2796 (Å), for every architecture;
mgfast_fcn's heatmap is decoded by the package (mgfast.model.decode_heatmap), as the engine does."""

from __future__ import annotations

import numpy as np

from mgfast.model import decode_heatmap


def decode(arch: str, outputs) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[no-untyped-def]
    if arch == "mgfast_fcn":
        return decode_heatmap(*outputs)
    if arch == "mgfast_joint":  # its summary: mgfast_fcn's three outputs come first
        return decode_heatmap(*outputs[:3])
    prob, lam = outputs
    return np.asarray(prob).reshape(-1), np.asarray(lam).reshape(-1)
