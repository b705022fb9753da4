"""Inference backends: the network of a loaded model run on spectra on the grid.

Thin: validation here (each problem a ``ValueError`` naming the argument), the work in C++ with
the GIL released. ``CpuBackend`` runs oneDNN in fp32; ``GpuBackend`` runs cuDNN and cuBLAS on an
NVIDIA GPU in fp32 or fp16 (the module mgfast._gpu, built where the CUDA toolkit and cuDNN are).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from . import _core
from .model import (
    INPUT_CHANNELS,
    Affine,
    AvgPool1d,
    Branch,
    Conv1d,
    Dense,
    Flatten,
    Heads,
    Heatmap,
    Layer,
    Model,
    load_model,
)
from .options import CPU_PRECISIONS, GPU_PRECISIONS, PRECISIONS, Device, cuda_index, parse_precision
from .preprocess import MIN_ARM_GOOD, MIN_PIXEL_GOOD, ContinuumOptions, continuum_args

if TYPE_CHECKING:
    from ._gpu import GpuNetwork  # built only with CUDA and cuDNN

_MAX_BATCH = 4096


def _core_layers(layers: tuple[Layer, ...]) -> list[_core.Layer]:
    """The layer list as the engines take it: mgfast._core.Layer, named and typed fields."""
    out: list[_core.Layer] = []
    for layer in layers:
        if isinstance(layer, Conv1d):
            out.append(_core.Layer(
                kind="conv1d", kernel=layer.kernel, relu=layer.relu, weight=layer.weight,
                bias=layer.bias, stride=layer.stride, dilation=layer.dilation,
                pad_l=layer.pad_l, pad_r=layer.pad_r,
            ))  # fmt: skip
        elif isinstance(layer, Affine):
            one = np.ones(1, np.float32)
            scale, offset = one * layer.scale, one * layer.offset
            out.append(_core.Layer(kind="affine", weight=scale, bias=offset))
        elif isinstance(layer, Heatmap):
            out.append(
                _core.Layer(kind="heatmap", kernel=layer.cell, weight=layer.weight, bias=layer.bias)
            )
        elif isinstance(layer, Branch):
            out.append(_core.Layer(kind="branch"))
        elif isinstance(layer, AvgPool1d):
            out.append(_core.Layer(kind="avgpool1d", kernel=layer.kernel))
        elif isinstance(layer, Flatten):
            out.append(_core.Layer(kind="flatten"))
        elif isinstance(layer, Dense):
            out.append(
                _core.Layer(kind="dense", relu=layer.relu, weight=layer.weight, bias=layer.bias)
            )
        elif isinstance(layer, Heads):
            out.append(_core.Layer(kind="heads", weight=layer.weight, bias=layer.bias))
        else:
            raise TypeError(f"layer {layer!r}: not a mgfast.model layer")
    return out


def _channel_codes(model: Model) -> list[int]:
    """The model's input channels as the engines take them (features.hpp's codes); [] for the
    flux alone."""
    return [] if not model.reads_noise else [INPUT_CHANNELS.index(c) for c in model.input_channels]


def _count(x: object, name: str, lo: int, hi: int) -> int:
    if isinstance(x, bool) or not isinstance(x, int | np.integer) or not lo <= x <= hi:
        raise ValueError(f"{name}: expected an integer in [{lo}, {hi}], got {x!r}")
    return int(x)


class _Backend:
    """What the backends share: a loaded model and its network (``_net``) in the C++ core."""

    model: Model
    _net: _core.CpuNetwork | GpuNetwork

    @property
    def batch_size(self) -> int:
        return int(self._net.batch_size)

    @property
    def map_output(self) -> bool:
        """Whether the network returns per-cell maps (mgfast_multi) rather than two numbers."""
        return bool(self._net.map_output)

    @property
    def input_channels(self) -> tuple[str, ...]:
        """What the network reads (mgfast.model.input_features): ("flux",), or more channels
        that the engine computes from flux and ivar as it feeds the network."""
        return self.model.input_channels

    def _ivar(self, ivar: npt.ArrayLike | None, x: np.ndarray) -> np.ndarray | None:
        """ivar for a network that reads it (None for the others: not used)."""
        if not self.model.reads_noise or ivar is None:
            return None
        iv = np.asarray(ivar)
        if iv.ndim == 1:
            iv = iv[None, :]
        if iv.shape != x.shape:
            raise ValueError(f"ivar: expected the shape of flux {x.shape}, got {np.shape(ivar)}")
        return np.ascontiguousarray(iv, dtype=np.float32)

    def infer(
        self, flux: npt.ArrayLike, ivar: npt.ArrayLike | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Probability and λ2796 (Å) of each spectrum: two float32 arrays of shape (N,).

        flux: (N, n_pix) or (n_pix,) floating-point, continuum-normalised and on mgfast.grid
        (what mgfast.preprocess returns); every value must be finite.
        ivar: inverse variances like flux (mgfast.preprocess's ivar, 0 where masked), read by a
        model whose input channels include the noise (``input_channels``); None: no errors
        known (its noise channels are 0, as for masked pixels). Ignored by flux-only models.
        """
        if self.map_output:
            raise ValueError(
                f"{self.model.architecture} returns per-cell maps, not one (probability, λ2796) "
                "per spectrum: use infer_map (or mgfast.Detector, which decodes them)"
            )
        x = _flux(flux, self.model.n_pix)
        if x.shape[0] == 0:
            return np.empty(0, np.float32), np.empty(0, np.float32)
        prob, lam = self._net.infer(x, self._ivar(ivar, x))
        return prob, lam

    def infer_map(self, flux: npt.ArrayLike, ivar: npt.ArrayLike | None = None) -> np.ndarray:
        """The network's output maps, float32 (N, cells, channels), for a network that ends in
        a convolution (mgfast_multi: decode with mgfast.absorbers.decode_absorbers); ivar as
        in infer."""
        if not self.map_output:
            raise ValueError(f"{self.model.architecture} returns (probability, λ2796): use infer")
        x = _flux(flux, self.model.n_pix)
        return self._net.infer_map(x, self._ivar(ivar, x))

    @property
    def has_summary(self) -> bool:
        """Whether the network (mgfast_dual) also returns a per-spectrum summary."""
        return bool(self._net.has_summary)

    def infer_dual(
        self, flux: npt.ArrayLike, ivar: npt.ArrayLike | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """mgfast_dual in one pass: its summary head's probability and λ2796 (N,) each, and its
        map (N, cells, channels); ivar as in infer."""
        if not self.has_summary:
            raise ValueError(f"{self.model.architecture} has no summary head: use infer_map")
        x = _flux(flux, self.model.n_pix)
        summary, maps = self._net.infer_dual(x, self._ivar(ivar, x))
        return summary[:, 0].copy(), summary[:, 1].copy(), maps


class CpuBackend(_Backend):
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
    precision : "fp32" or "bf16" (convolutions and pooling on bf16 activations and weights with
        fp32 accumulation, on CPUs with AVX512-BF16 or AMX; docs/BENCHMARKS.md has its accuracy)
    """

    _net: _core.CpuNetwork

    def __init__(
        self,
        model: Model | str | Path,
        *,
        threads: int = 0,
        batch_size: int = 16,
        fast_conv: bool = True,
        precision: str = "fp32",
    ) -> None:
        self.model = model if isinstance(model, Model) else load_model(model)
        threads = _count(threads, "threads", 0, 4096)
        batch_size = _count(batch_size, "batch_size", 1, _MAX_BATCH)
        self.precision = parse_precision(precision, Device("cpu"))
        if not _core.built_with_onednn:
            raise RuntimeError(
                "this mgfast was built without oneDNN, so it has no CPU backend: reinstall with "
                "`pip install .` (the build installs onednn-devel-cpu-gomp)"
            )
        options = _core.EngineOptions(
            device="cpu", threads=threads, batch_size=batch_size, precision=self.precision,
            fast_conv=bool(fast_conv), channels=_channel_codes(self.model),
        )  # fmt: skip
        self._net = _core.CpuNetwork(self.model.n_pix, _core_layers(self.model.layers), options)

    @property
    def threads(self) -> int:
        return int(self._net.threads)


def gpu_engine_module() -> Any:
    """mgfast._gpu, or a RuntimeError saying why this installation has no GPU engine."""
    try:
        from . import _gpu
    except ImportError as e:
        why = str(e)
        if "No module named" in why:
            why = (
                "this mgfast was built without it (it needs the CUDA toolkit and cuDNN 9 at "
                "build time: reinstall on a machine with both, or set CUDNN_ROOT)"
            )
        raise RuntimeError(f"the GPU inference engine is not available: {why}") from None
    return _gpu


class GpuBackend(_Backend):
    """The model's network on an NVIDIA GPU: cuDNN convolutions, cuBLAS dense layers, custom
    kernels for the one-channel first convolution, pooling, bias/ReLU and the heads.

    Parameters
    ----------
    model : Model or path of a model directory
    device : "cuda" or "cuda:N"
    batch_size : int
        Spectra per launch (the CUDA graphs' fixed shape; a last partial batch runs padded).
    precision : "fp32" (no TF32) or "fp16" (half activations and weights, fp32 accumulation,
        tensor cores)
    slots : int
        Depth of the ring of pinned host buffers and streams (3: the copy-in, compute and
        copy-out of three batches overlap).
    graphs : bool
        Capture each slot's copy-in + network + copy-out as a CUDA graph (``graph_status`` says
        whether capture worked; plain launches otherwise).
    """

    _net: GpuNetwork

    def __init__(
        self,
        model: Model | str | Path,
        *,
        device: str = "cuda:0",
        batch_size: int = 1024,
        precision: str = "fp32",
        slots: int = 3,
        graphs: bool = True,
    ) -> None:
        self.model = model if isinstance(model, Model) else load_model(model)
        index = cuda_index(device)
        batch_size = _count(batch_size, "batch_size", 1, 65536)
        slots = _count(slots, "slots", 2, 8)
        self.precision = parse_precision(precision, Device("cuda", index))
        gpu = gpu_engine_module()
        self.device = f"cuda:{index}"
        options = _core.EngineOptions(
            device=self.device, batch_size=batch_size, precision=self.precision, slots=slots,
            graphs=bool(graphs), channels=_channel_codes(self.model),
        )  # fmt: skip
        self._net = gpu.GpuNetwork(self.model.n_pix, _core_layers(self.model.layers), options)

    @property
    def threads(self) -> int:
        return 1  # one host thread feeds the ring

    @property
    def device_index(self) -> int:
        return int(self._net.device)

    @property
    def graph_status(self) -> str:
        return str(self._net.graph_status)

    @property
    def device_name(self) -> str:
        return str(self._net.device_name)

    def infer_device(self, flux: Any, out: Any) -> None:
        """The network on spectra already on this GPU: ``flux`` (N, n_pix) float32 and ``out``
        ((N, 2) probability and λ2796, or the (N, cells, channels) map) are C-contiguous device
        arrays exposing ``__cuda_array_interface__`` (CuPy, PyTorch, pycuda, Numba); no host
        round trip. The input must be finite (no check is made on the device). Not for a model
        that reads the noise (``input_channels`` beyond the flux): detect_device makes its ivar
        on the device."""
        if self.model.reads_noise:
            raise ValueError(
                f"infer_device: this model reads {', '.join(self.input_channels)}, which need "
                "the ivar beside the flux: use detect_device (err or ivar on the device) or infer"
            )
        self._net.infer_device(flux, out)

    def detect_device(
        self,
        flux: Any,
        err: Any = None,
        ivar: Any = None,
        mask: Any = None,
        *,
        normalised: bool = True,
        bad_bits: int = 0xFFFFFFFF,
        continuum: ContinuumOptions | None = None,
    ) -> dict[str, np.ndarray]:
        """Spectra on the grid already on this GPU (C-contiguous (N, N_PIX) device arrays with
        ``__cuda_array_interface__``: float32 flux, err or ivar, uint32 mask) through
        preprocessing (mgfast.preprocess's stages, the same kernels), the per-spectrum SNR and
        the network, all on the device, batch by batch. Only results come back, as host arrays:
        "out" (the network's (N, 2) or (N, cells, channels)), "summary" (N, 2) for mgfast_dual,
        "flags", "n_masked", "snr" and the uint8 "pixmask" (for the detection flags). The
        spectra themselves never visit the host. mgfast.Detector.detect calls this for GPU
        arrays. A model that reads the noise (``input_channels`` beyond the flux) gets the
        preprocessed ivar beside the flux, and needs err or ivar (ValueError without: the
        estimate from the scatter of spectra without errors is made on the host only)."""
        if err is not None and ivar is not None:
            raise ValueError("err, ivar: give one or the other, not both")
        if self.model.reads_noise and err is None and ivar is None:
            raise ValueError(
                f"err, ivar: this model reads {', '.join(self.input_channels)}: give the "
                "spectra's errors on the GPU too (or pass host arrays: spectra without errors "
                "then get them from their scatter, on the host)"
            )
        out = self._net.detect_device(
            flux, err if ivar is None else ivar, mask, ivar is not None,
            int(bad_bits) & 0xFFFFFFFF, not normalised, MIN_PIXEL_GOOD, MIN_ARM_GOOD,
            *continuum_args(continuum),
        )  # fmt: skip
        return dict(out)

    def profile(self, flux: npt.ArrayLike) -> dict[str, float]:
        """Milliseconds spent copying in, computing and copying out, each stage timed alone
        with CUDA events, over the batches of ``flux`` (a model that reads the noise gets ivar
        0, copied in beside the flux)."""
        x = _flux(flux, self.model.n_pix)
        t = self._net.profile(x)
        return {
            "host-to-device": t.h2d_ms,
            "compute": t.compute_ms,
            "device-to-host": t.d2h_ms,
            "batches": t.batches,
        }


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


__all__ = [
    "CPU_PRECISIONS",
    "GPU_PRECISIONS",
    "PRECISIONS",
    "CpuBackend",
    "GpuBackend",
    "cuda_index",
    "gpu_engine_module",
]
