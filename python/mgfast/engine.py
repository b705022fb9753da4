"""Inference backends: the network of a loaded model run on spectra on the grid.

Thin: validation here (each problem a ``ValueError`` naming the argument), the work in C++ with
the GIL released. ``CpuBackend`` runs oneDNN in fp32.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt

from . import _core
from .model import (
    Affine,
    AvgPool1d,
    Conv1d,
    Dense,
    Flatten,
    Heads,
    Heatmap,
    Layer,
    Model,
    load_model,
)

_MAX_BATCH = 4096


def _core_layers(layers: tuple[Layer, ...]) -> list[tuple]:
    """The layer list as _core.CpuNetwork takes it: (kind, kernel, relu, weight, bias)."""
    out: list[tuple] = []
    for layer in layers:
        if isinstance(layer, Conv1d):
            geometry = (layer.stride, layer.dilation, layer.pad_l, layer.pad_r)
            out.append(("conv1d", layer.kernel, layer.relu, layer.weight, layer.bias, geometry))
        elif isinstance(layer, Affine):
            one = np.ones(1, np.float32)
            out.append(("affine", 0, False, one * layer.scale, one * layer.offset))
        elif isinstance(layer, Heatmap):
            out.append(("heatmap", layer.cell, False, layer.weight, layer.bias))
        elif isinstance(layer, AvgPool1d):
            out.append(("avgpool1d", layer.kernel, False, None, None))
        elif isinstance(layer, Flatten):
            out.append(("flatten", 0, False, None, None))
        elif isinstance(layer, Dense):
            out.append(("dense", 0, layer.relu, layer.weight, layer.bias))
        elif isinstance(layer, Heads):
            out.append(("heads", 0, False, layer.weight, layer.bias))
        else:
            raise TypeError(f"layer {layer!r}: not a mgfast.model layer")
    return out


def _count(x: object, name: str, lo: int, hi: int) -> int:
    if isinstance(x, bool) or not isinstance(x, int | np.integer) or not lo <= x <= hi:
        raise ValueError(f"{name}: expected an integer in [{lo}, {hi}], got {x!r}")
    return int(x)


class CpuBackend:
    """The model's network on the CPU with oneDNN (fp32, fused convolution + ReLU).

    Parameters
    ----------
    model : Model or path of a model directory
    threads : int
        Threads (0: all cores). Each runs single-threaded oneDNN on its own chunks of a call's
        spectra: no thread waits for another between layers, a core busy with other work only
        slows its own chunks, and the results do not depend on the thread count.
    batch_size : int
        At most this many spectra per chunk (memory: about 2 MB per spectrum and thread for the
        paper's network); beyond a few the speed no longer changes.
    fast_conv : bool
        Even-kernel convolutions by the 2-parallel fast FIR algorithm: 3/4 of the flops, equal
        to the direct convolution within fp32 rounding. False: every convolution direct.
    """

    def __init__(
        self,
        model: Model | str | Path,
        *,
        threads: int = 0,
        batch_size: int = 16,
        fast_conv: bool = True,
    ) -> None:
        self.model = model if isinstance(model, Model) else load_model(model)
        threads = _count(threads, "threads", 0, 4096)
        batch_size = _count(batch_size, "batch_size", 1, _MAX_BATCH)
        if not _core.built_with_onednn:
            raise RuntimeError(
                "this mgfast was built without oneDNN, so it has no CPU backend: reinstall with "
                "`pip install .` (the build installs onednn-devel-cpu-gomp)"
            )
        self._net = _core.CpuNetwork(
            self.model.n_pix, _core_layers(self.model.layers), threads, batch_size, bool(fast_conv)
        )

    @property
    def threads(self) -> int:
        return int(self._net.threads)

    @property
    def batch_size(self) -> int:
        return int(self._net.batch_size)

    def infer(self, flux: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
        """Probability and λ2796 (Å) of each spectrum: two float32 arrays of shape (N,).

        flux: (N, n_pix) or (n_pix,) floating-point, continuum-normalised and on mgfast.grid
        (what mgfast.preprocess returns); every value must be finite.
        """
        if self.map_output:
            raise ValueError(
                f"{self.model.architecture} returns per-cell maps, not one (probability, λ2796) "
                "per spectrum: use infer_map (or mgfast.Detector, which decodes them)"
            )
        x = _flux(flux, self.model.n_pix)
        if x.shape[0] == 0:
            return np.empty(0, np.float32), np.empty(0, np.float32)
        prob, lam = self._net.infer(x)
        return prob, lam

    @property
    def map_output(self) -> bool:
        """Whether the network returns per-cell maps (mgfast_multi) rather than two numbers."""
        return bool(self._net.map_output)

    def infer_map(self, flux: npt.ArrayLike) -> np.ndarray:
        """The network's output maps, float32 (N, cells, channels), for a network that ends in
        a convolution (mgfast_multi: decode with mgfast.absorbers.decode_absorbers)."""
        if not self.map_output:
            raise ValueError(f"{self.model.architecture} returns (probability, λ2796): use infer")
        x = _flux(flux, self.model.n_pix)
        return self._net.infer_map(x)


def _flux(flux: npt.ArrayLike, n_pix: int) -> np.ndarray:
    a = np.asarray(flux)
    if not np.issubdtype(a.dtype, np.floating):
        raise ValueError(f"flux: expected floating-point values, got an array of dtype {a.dtype}")
    if a.ndim == 1:
        a = a[None, :]
    if a.ndim != 2 or a.shape[1] != n_pix:
        raise ValueError(
            f"flux: expected shape (N, {n_pix}) on mgfast.grid, got {np.shape(flux)}; "
            "bring spectra onto the grid with mgfast.preprocess"
        )
    x = np.ascontiguousarray(a, dtype=np.float32)
    bad: list[np.ndarray] = []
    n_empty = 0
    for i in range(0, len(x), 4096):  # in blocks: no mask as large as the input
        finite = np.isfinite(x[i : i + 4096])
        bad.append(i + np.flatnonzero(~finite.all(axis=1)))
        n_empty += int((~finite.any(axis=1)).sum())
    rows = np.concatenate(bad) if bad else np.empty(0, np.int64)
    if len(rows):
        what = "has no finite value" if n_empty == len(rows) else "has NaN or inf values"
        shown = ", ".join(str(i) for i in rows[:10]) + (", …" if len(rows) > 10 else "")
        raise ValueError(
            f"flux: spectrum {shown} {what}; the network needs finite input: run "
            "mgfast.preprocess (it masks bad pixels) or drop those spectra"
        )
    return x


__all__ = ["CpuBackend"]
