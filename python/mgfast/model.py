"""The model format: a directory with model.onnx and model.json, its writer and its loader.

The loader checks a model against mgfast (SHA-256, grid, architecture) and hands the backends a
plain layer list whose weights are contiguous float32 arrays in the layouts they expect
(src/cpp/network.hpp): convolution weights (c_out, c_in, kernel) as in ONNX, dense weights
(n_out, n_in) with n_in in Keras' channels-last flatten order (position * channels + channel),
the two heads stacked as rows (probability, λ2796).

model.onnx: input "flux" (N, n_pix) float32 with a dynamic batch N; outputs "probability" and
"lambda2796" (Å), each (N, 1); opset 17; the graph build_onnx writes (what a Keras Conv1D model
exported with tf2onnx computes). A model that reads more than the flux (input_features: the
noise channels of issue 16) has input "features" (N, C, n_pix) instead. model.json: format and
format_version, architecture (a key of ARCHITECTURES), grid (n_pix, dlnlambda, arms), input
(name, channels when not the flux alone, normalisation), thresholds, trained, training (set,
seed), metrics, mgfast_version and onnx_sha256.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from . import _core, grid
from .absorbers import ErrorModel
from .simulate import NO_ABSORBER_LAMBDA

FORMAT = "mgfast-model"
FORMAT_VERSION = 1
ONNX_OPSET = 17
INPUT_NAME = "flux"
FEATURES_NAME = "features"  # the ONNX input (N, C, n_pix) of a model with several channels
OUTPUT_NAMES = ("probability", "lambda2796")
_MAX_JSON_BYTES = 1 << 20
LAMBDA_HEAD_GAIN = 1000.0  # random models only: see random_weights


# --- The network's input: the channels a model reads. -----------------------------------------
# Computed from the preprocessed spectra (normalised flux, 1 where masked; ivar, 0 where masked)
# by one function, input_features, for training and both engines (src/cpp/features.hpp).
# "flux": the flux itself (an FCN model's affine first layer maps it to 1 - flux, as in the
# one-channel models); "whitened": clamp((1 - flux) sqrt(ivar), -8, 8) / 4, the absorption in
# units of the pixel's noise; "log_snr": log10(1 + sqrt(ivar)) / 2, the pixel's SNR. Both are 0
# where the pixel is masked (ivar 0), so that a masked pixel reads as "no information".
# A multi-channel model lists its channels in model.json's input.channels, flux first.
INPUT_CHANNELS = ("flux", "whitened", "log_snr")
FLUX_ONLY = ("flux",)


def check_channels(channels: Sequence[str] | str | None) -> tuple[str, ...]:
    """A model's input channels as a tuple (None: flux only), checked: known names, no repeats,
    "flux" first (the affine first layer of the FCN models acts on channel 0)."""
    if channels is None:
        return FLUX_ONLY
    if isinstance(channels, str):
        channels = [c.strip() for c in channels.split(",") if c.strip()]
    out = tuple(str(c) for c in channels)
    unknown = [c for c in out if c not in INPUT_CHANNELS]
    if unknown or not out:
        raise ValueError(
            f"input channels {list(out)}: unknown {unknown or 'none given'}; "
            f"known: {', '.join(INPUT_CHANNELS)}"
        )
    if len(set(out)) != len(out):
        raise ValueError(f"input channels {list(out)}: a channel is named twice")
    if out[0] != "flux":
        raise ValueError(f"input channels {list(out)}: the first channel must be 'flux'")
    return out


def input_name(channels: Sequence[str] | None) -> str:
    """The ONNX input of a model reading these channels: "flux" (N, n_pix) for the flux alone,
    "features" (N, C, n_pix) otherwise."""
    return INPUT_NAME if check_channels(channels) == FLUX_ONLY else FEATURES_NAME


def input_features(
    flux: npt.ArrayLike,
    ivar: npt.ArrayLike | None,
    channels: Sequence[str] | str | None = None,
    *,
    channels_last: bool = False,
    threads: int = 0,
) -> np.ndarray:
    """The network's input (N, C, L) float32 (``channels_last``: (N, L, C), Keras' layout) from
    preprocessed flux and ivar (N, L) (or one spectrum (L,)): the same numbers the engines compute
    (src/cpp/features.hpp, one definition for training, the CPU and the GPU engine). ivar None:
    no errors known (every pixel's ivar 0)."""
    chans = check_channels(channels)
    f = np.asarray(flux, np.float32)
    one = f.ndim == 1
    f = np.ascontiguousarray(np.atleast_2d(f))
    if f.ndim != 2:
        raise ValueError(f"flux: expected (N, n_pix) or (n_pix,), got shape {np.shape(flux)}")
    if ivar is None:
        iv = np.zeros_like(f)
    else:
        iv = np.ascontiguousarray(np.atleast_2d(np.asarray(ivar, np.float32)))
        if iv.shape != f.shape:
            raise ValueError(f"ivar: shape {iv.shape} differs from flux's {f.shape}")
    if hasattr(_core, "input_features"):
        codes = np.array([INPUT_CHANNELS.index(c) for c in chans], np.int32)
        out = _core.input_features(f, iv, codes, bool(channels_last), int(threads))
    else:
        out = input_features_numpy(f, iv, chans)
        if channels_last:
            out = np.ascontiguousarray(np.moveaxis(out, 1, 2))
    return out[0] if one else out


def input_features_numpy(
    flux: np.ndarray, ivar: np.ndarray, channels: Sequence[str] | None = None
) -> np.ndarray:
    """input_features in NumPy, (N, C, L) (the reference the tests hold the C++ one to)."""
    f = np.asarray(flux, np.float32)
    iv = np.asarray(ivar, np.float32)
    with np.errstate(invalid="ignore"):
        ok = (iv > 0) & (iv < np.inf)
    s = np.sqrt(np.where(ok, iv, np.float32(0)))
    out = []
    for c in check_channels(channels):
        if c == "flux":
            out.append(f)
        elif c == "whitened":
            w = (np.float32(1) - f) * s
            out.append(np.clip(w, np.float32(-8), np.float32(8)) * np.float32(0.25))
        else:  # log10 in double, rounded once to float32: the same bits on every platform
            ls = np.log10(np.float64(1) + s.astype(np.float64)).astype(np.float32)
            out.append(ls * np.float32(0.5))
    return np.stack(out, axis=-2).astype(np.float32)


# --- Architectures: what a model directory may claim to be. ---------------------------------
# Every hidden convolution and dense layer has a ReLU; pooling strides equal the pool size; the
# flatten is channels-last (Keras); the two heads read the last dense layer.


@dataclass(frozen=True)
class ConvSpec:
    filters: int
    kernel: int


@dataclass(frozen=True)
class PoolSpec:
    size: int


@dataclass(frozen=True)
class FlattenSpec:
    pass


@dataclass(frozen=True)
class DenseSpec:
    units: int


@dataclass(frozen=True)
class HeadsSpec:
    pass


LayerSpec = ConvSpec | PoolSpec | FlattenSpec | DenseSpec | HeadsSpec

ARCHITECTURES: dict[str, tuple[LayerSpec, ...]] = {
    # Szakacs et al. 2023, Figure 4 (see shared/reference/bycycle-2023.md, table "Network").
    "bycycle2023": (
        ConvSpec(64, 10),
        PoolSpec(5),
        ConvSpec(128, 10),
        PoolSpec(5),
        ConvSpec(256, 10),
        ConvSpec(256, 10),
        ConvSpec(256, 10),
        PoolSpec(5),
        FlattenSpec(),
        DenseSpec(512),
        DenseSpec(512),
        HeadsSpec(),
    ),
    # mgfast's own fully convolutional network: described by FCN_CONVS, built by _fcn_onnx.
    "mgfast_fcn": (),
    # every absorber in a sightline: MULTI_CONVS and a 1x1 map head, built by _fcn_onnx too.
    "mgfast_multi": (),
    # both on one trunk: mgfast_fcn (the sightline's summary, its heatmap head) and
    # mgfast_multi's head (every absorber) on mgfast_fcn's trunk; built by _fcn_onnx.
    "mgfast_dual": (),
}
FCN_ARCHITECTURES = ("mgfast_fcn", "mgfast_multi", "mgfast_dual")


# --- Layers with weights, as the backends take them. -----------------------------------------


@dataclass(frozen=True, eq=False)
class Conv1d:
    """1-D convolution (valid and stride 1 unless told otherwise). weight (c_out, c_in, kernel),
    bias (c_out,); zero padding pad_l and pad_r, dilation as in Keras and ONNX (1: none)."""

    weight: np.ndarray
    bias: np.ndarray
    relu: bool = True
    stride: int = 1
    dilation: int = 1
    pad_l: int = 0
    pad_r: int = 0

    def out_length(self, n: int) -> int:
        span = self.dilation * (self.kernel - 1) + 1
        return (n + self.pad_l + self.pad_r - span) // self.stride + 1

    @property
    def c_in(self) -> int:
        return int(self.weight.shape[1])

    @property
    def c_out(self) -> int:
        return int(self.weight.shape[0])

    @property
    def kernel(self) -> int:
        return int(self.weight.shape[2])


@dataclass(frozen=True)
class AvgPool1d:
    """Average over non-overlapping windows of `kernel` pixels (stride = kernel), no padding."""

    kernel: int


@dataclass(frozen=True)
class Flatten:
    """(channels, length) -> one vector in channels-last order: index = position * channels + c."""


@dataclass(frozen=True, eq=False)
class Dense:
    """y = x W^T + b. weight (n_out, n_in), bias (n_out,); after a Flatten, n_in is in the
    channels-last order of Flatten."""

    weight: np.ndarray
    bias: np.ndarray
    relu: bool = True

    @property
    def n_in(self) -> int:
        return int(self.weight.shape[1])

    @property
    def n_out(self) -> int:
        return int(self.weight.shape[0])


@dataclass(frozen=True, eq=False)
class Heads:
    """The two outputs from one input: row 0 of weight (2, n_in) gives the probability (sigmoid),
    row 1 λ2796 in Å (ReLU)."""

    weight: np.ndarray
    bias: np.ndarray

    @property
    def n_in(self) -> int:
        return int(self.weight.shape[1])


@dataclass(frozen=True)
class Affine:
    """The input map x -> scale x + offset (mgfast_fcn reads 1 - flux), first layer only; with
    several input channels it maps the flux (channel 0) alone."""

    scale: float
    offset: float


@dataclass(frozen=True, eq=False)
class Heatmap:
    """mgfast_fcn's head on (channels C, positions) features: weight (4C,) = [cell logit (C),
    cell offset (C), "none" logit from the channels' max (C) and mean (C)], bias (3,); each
    position covers `cell` pixels. Decoded by the backend into probability and λ2796."""

    weight: np.ndarray
    bias: np.ndarray
    cell: int


@dataclass(frozen=True)
class Branch:
    """Right after a Heatmap: the layers that follow read the heatmap's input (the trunk's
    features), and the network returns both the heatmap's (probability, λ2796), its summary,
    and the map its last layer makes (mgfast_dual)."""


Layer = Conv1d | AvgPool1d | Flatten | Dense | Heads | Affine | Heatmap | Branch

# mgfast_fcn (training/models.py): (filters, kernel, stride, dilation) of its convolutions, all
# with 'same' padding and ReLU, then the heatmap head on 4-pixel cells.
FCN_CONVS: tuple[tuple[int, int, int, int], ...] = (
    (16, 7, 1, 1),
    (32, 5, 2, 1),
    (32, 5, 2, 1),
    *((32, 3, 1, d) for d in (1, 2, 4, 8, 16)),
)
FCN_CELL = 4
FCN_OUTPUTS = ("cell_logits", "cell_offsets", "none_logit")
# mgfast_multi: mgfast_fcn's trunk, one more 'same' convolution, and a 1x1 convolution to
# MULTI_MAPS channels per cell: the logit, then mgfast.absorbers.CHANNELS. One output,
# MULTI_OUTPUT (N, cells, MULTI_MAPS), decoded by mgfast.absorbers.decode_absorbers.
MULTI_CONVS: tuple[tuple[int, int, int, int], ...] = (*FCN_CONVS, (32, 3, 1, 1))
MULTI_MAPS = 7
MULTI_OUTPUT = "cell_maps"


def trunk_convs(architecture: str) -> tuple[tuple[int, int, int, int], ...]:
    """(filters, kernel, stride, dilation) of a fully convolutional architecture's trunk (for
    mgfast_dual the shared one: its map head's own convolution is MULTI_CONVS[-1])."""
    return MULTI_CONVS if architecture == "mgfast_multi" else FCN_CONVS


def same_padding(n: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """Keras' (TensorFlow's) 'same' padding: output ceil(n / stride), the extra pixel right."""
    span = dilation * (kernel - 1) + 1
    total = max((-(-n // stride) - 1) * stride + span - n, 0)
    return total // 2, total - total // 2


def _shapes(specs: Sequence[LayerSpec], n_pix: int) -> list[tuple[int, int]]:
    """(channels, length) entering each layer spec, and leaving the last; dense: (units, 1)."""
    c, n = 1, n_pix
    out = [(c, n)]
    for s in specs:
        if isinstance(s, ConvSpec):
            c, n = s.filters, n - s.kernel + 1
        elif isinstance(s, PoolSpec):
            n = n // s.size
        elif isinstance(s, FlattenSpec):
            c, n = c * n, 1
        elif isinstance(s, DenseSpec):
            c = s.units
        else:
            c = 2
        if n < 1:
            raise ValueError(f"architecture leaves no pixels after {s} for an input of {n_pix}")
        out.append((c, n))
    return out


def flops_per_spectrum(layers: Sequence[Layer], n_pix: int) -> float:
    """Multiply-adds × 2 of the convolutions and dense layers (pooling and activations omitted)."""
    n = n_pix
    flops = 0.0
    for layer in layers:
        if isinstance(layer, Conv1d):
            n = layer.out_length(n)
            flops += 2.0 * n * layer.c_out * layer.c_in * layer.kernel
        elif isinstance(layer, Heatmap):
            flops += 2.0 * n * layer.weight.size / 2 + 2.0 * layer.weight.size / 2
        elif isinstance(layer, AvgPool1d):
            n //= layer.kernel
        elif isinstance(layer, Dense | Heads):
            flops += 2.0 * layer.weight.size
    return flops


# --- Writing: the canonical ONNX graph. ------------------------------------------------------


def build_onnx(
    architecture: str,
    weights: Sequence[tuple[np.ndarray, np.ndarray]],
    n_pix: int | None = None,
    *,
    conv2d: bool = False,
    channels: Sequence[str] | None = None,
) -> Any:
    """The ONNX graph (an onnx.ModelProto) of an architecture with the given weights.
    ``channels``: the input channels (input_features; None: the flux alone, input "flux"
    (N, n_pix)); an FCN architecture reading more has input "features" (N, C, n_pix).

    weights: one (weight, bias) per convolution, dense layer and head, in order, in Keras'
    layouts: Conv1D kernel (kernel, c_in, c_out), Dense kernel (n_in, n_out), and the two heads
    as (n_in, 1) kernels each (probability first). The graph computes what the Keras model
    exported with tf2onnx computes: input (N, n_pix) float32 with a dynamic batch dimension N,
    outputs "probability" and "lambda2796", each (N, 1). With conv2d=True the convolutions and
    pools are 2-D with height 1 (what tf2onnx emits for Conv1D; ONNX Runtime runs it faster).
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    specs = _architecture(architecture)
    n_pix = grid.N_PIX if n_pix is None else n_pix
    channels = check_channels(channels)
    if architecture in FCN_ARCHITECTURES:
        return _fcn_onnx(weights, n_pix, architecture, channels)
    if channels != FLUX_ONLY:
        raise ValueError(f"architecture {architecture!r} reads the flux alone, not {channels}")
    shapes = _shapes(specs, n_pix)
    nodes: list[Any] = []
    inits: list[Any] = []

    def const(name: str, a: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.ascontiguousarray(a), name))
        return name

    def node(op: str, inputs: list[str], name: str, **attrs: Any) -> str:
        nodes.append(helper.make_node(op, inputs, [name], name=name, **attrs))
        return name

    def dense(x: str, w: np.ndarray, b: np.ndarray, name: str) -> str:
        # tf2onnx writes a Keras Dense as MatMul + Add with the (n_in, n_out) kernel.
        y = node("MatMul", [x, const(f"{name}/kernel", w.astype(np.float32))], f"{name}/MatMul")
        return node("Add", [y, const(f"{name}/bias", b.astype(np.float32))], f"{name}/BiasAdd")

    spatial = [1] if conv2d else []  # the height-1 axis of the 2-D form
    x = node(
        "Unsqueeze",
        [INPUT_NAME, const("unsqueeze_axes", np.array([1, 2] if conv2d else [1], np.int64))],
        "channels",
    )
    it = iter(weights)
    n_dense = 0
    for i, (s, (c, _)) in enumerate(zip(specs, shapes, strict=False)):
        if isinstance(s, ConvSpec):
            w, b = next(it)
            _check_keras(w, b, (s.kernel, c, s.filters), f"conv1d_{i}")
            k = np.ascontiguousarray(np.transpose(w, (2, 1, 0)), dtype=np.float32)  # (O, I, K)
            if conv2d:
                k = k[:, :, None, :]
            x = node(
                "Conv",
                [
                    x,
                    const(f"conv1d_{i}/kernel", k),
                    const(f"conv1d_{i}/bias", b.astype(np.float32)),
                ],
                f"conv1d_{i}/Conv",
                kernel_shape=[*spatial, s.kernel],
                strides=[1, *spatial],
                pads=[0, 0] * (2 if conv2d else 1),
                dilations=[1, *spatial],
            )
            x = node("Relu", [x], f"conv1d_{i}/Relu")
        elif isinstance(s, PoolSpec):
            x = node(
                "AveragePool",
                [x],
                f"average_pooling1d_{i}",
                kernel_shape=[*spatial, s.size],
                strides=[*spatial, s.size],
                pads=[0, 0] * (2 if conv2d else 1),
                ceil_mode=0,
            )
        elif isinstance(s, FlattenSpec):
            # Keras' Conv1D is channels-last, (N, length, channels), and so is its Flatten; ONNX
            # Conv is channels-first, so transpose to channels-last before flattening, exactly
            # as tf2onnx's export of the Keras model does.
            x = node(
                "Transpose", [x], "to_channels_last", perm=[0, 2, 3, 1] if conv2d else [0, 2, 1]
            )
            x = node("Flatten", [x], "flatten", axis=1)
        elif isinstance(s, DenseSpec):
            w, b = next(it)
            _check_keras(w, b, (c, s.units), f"dense_{n_dense}")
            x = node("Relu", [dense(x, w, b, f"dense_{n_dense}")], f"dense_{n_dense}/Relu")
            n_dense += 1
        else:
            wp, bp = next(it)
            wl, bl = next(it)
            _check_keras(wp, bp, (c, 1), "probability head")
            _check_keras(wl, bl, (c, 1), "lambda2796 head")
            nodes.append(
                helper.make_node(
                    "Sigmoid", [dense(x, wp, bp, "probability")], [OUTPUT_NAMES[0]], name="sigmoid"
                )
            )
            nodes.append(
                helper.make_node(
                    "Relu", [dense(x, wl, bl, "lambda2796")], [OUTPUT_NAMES[1]], name="relu_out"
                )
            )
    if next(it, None) is not None:
        raise ValueError(f"weights: more arrays than architecture {architecture!r} has layers")
    graph = helper.make_graph(
        nodes,
        architecture,
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["N", n_pix])],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, ["N", 1]) for o in OUTPUT_NAMES],
        initializer=inits,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", ONNX_OPSET)],
        producer_name="mgfast",
        producer_version=_core.__version__,
    )
    model.ir_version = 8  # opset 17's IR version: readable by ONNX Runtime and TensorRT of 2022 on
    onnx.checker.check_model(model)
    return model


def _check_keras(w: np.ndarray, b: np.ndarray, shape: tuple[int, ...], what: str) -> None:
    if w.shape != shape or b.shape != (shape[-1],):
        raise ValueError(
            f"weights of {what}: expected kernel {shape} and bias ({shape[-1]},), "
            f"got {w.shape} and {b.shape}"
        )


def random_weights(
    architecture: str,
    seed: int = 0,
    n_pix: int | None = None,
    channels: Sequence[str] | None = None,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """He-normal (untruncated) random weights in Keras layouts, zero biases, for build_onnx.

    The λ2796 head is scaled like a trained one's: kernel × LAMBDA_HEAD_GAIN and bias the paper's
    no-absorber label (5358 Å), so that λ spreads over hundreds of Å at a trained model's magnitude
    and a comparison of backends sees the fp32 rounding a trained model would amplify.
    """
    specs = _architecture(architecture)
    rng = np.random.default_rng(seed)
    n_ch = len(check_channels(channels))
    if n_ch > 1 and architecture not in FCN_ARCHITECTURES:
        raise ValueError(f"architecture {architecture!r} reads the flux alone")
    if architecture == "mgfast_dual":  # the fcn's trunk and heads, then the multi's head
        fcn = random_weights("mgfast_fcn", seed, n_pix, channels)
        multi = random_weights("mgfast_multi", seed + 1, n_pix, channels)
        return fcn + multi[len(FCN_CONVS) :]
    if architecture in ("mgfast_fcn", "mgfast_multi"):
        out = []
        c = n_ch
        for filters, k, _, _ in trunk_convs(architecture):
            w = rng.standard_normal((k, c, filters)).astype(np.float32) * np.float32(
                math.sqrt(2.0 / (k * c))
            )
            out.append((w, (0.01 * rng.standard_normal(filters)).astype(np.float32)))
            c = filters
        if architecture == "mgfast_multi":  # the cell logit (1) and the maps (MULTI_MAPS - 1)
            for n_out in (1, MULTI_MAPS - 1):
                w = rng.standard_normal((1, c, n_out)).astype(np.float32)
                out.append((w * np.float32(math.sqrt(1.0 / c)), np.zeros(n_out, np.float32)))
            out[-2] = (out[-2][0], np.full(1, -6.0, np.float32))  # absorbers are rare cells
            return out
        for n_in in (c, c, 2 * c):  # cell logit, cell offset, none logit
            w = rng.standard_normal((1, n_in, 1) if n_in == c else (n_in, 1)).astype(np.float32)
            out.append((w * np.float32(math.sqrt(1.0 / n_in)), np.zeros(1, np.float32)))
        # "none" about as likely as any of the ~1579 cells together, as in a trained model.
        out[-1] = (out[-1][0], np.full(1, math.log(grid.N_PIX / FCN_CELL), np.float32))
        return out
    shapes = _shapes(specs, grid.N_PIX if n_pix is None else n_pix)

    def he(shape: tuple[int, ...], fan_in: int) -> np.ndarray:
        w = rng.standard_normal(shape, dtype=np.float32)
        w *= np.float32(math.sqrt(2.0 / fan_in))
        return w

    out = []
    for s, (c, _) in zip(specs, shapes, strict=False):
        if isinstance(s, ConvSpec):
            out.append(
                (he((s.kernel, c, s.filters), s.kernel * c), np.zeros(s.filters, np.float32))
            )
        elif isinstance(s, DenseSpec):
            out.append((he((c, s.units), c), np.zeros(s.units, np.float32)))
        elif isinstance(s, HeadsSpec):
            out.append((he((c, 1), c), np.zeros(1, np.float32)))
            lam = he((c, 1), c) * np.float32(LAMBDA_HEAD_GAIN)
            out.append((lam, np.full(1, NO_ABSORBER_LAMBDA, np.float32)))
    return out


def grid_metadata() -> dict[str, Any]:
    """The grid as model.json records it."""
    return {
        "n_pix": grid.N_PIX,
        "dlnlambda": grid.DLNLAMBDA,
        "arms": [
            {"name": a.name, "lo": a.lo, "hi": a.hi, "start": a.start, "stop": a.stop}
            for a in grid.ARMS
        ],
    }


def save_model(
    directory: str | Path,
    onnx_model: Any,
    architecture: str,
    *,
    trained: bool,
    training: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    thresholds: dict[str, float] | None = None,
    calibration: tuple[np.ndarray, np.ndarray] | None = None,
    sigma_scale: dict[str, float] | None = None,
    input_channels: Sequence[str] | None = None,
) -> Path:
    """Write model.onnx and model.json (with the ONNX file's SHA-256) into directory;
    ``calibration``: mgfast_multi's score-to-probability curve (x, y); ``input_channels``: what
    the network reads (input_features; None: the flux alone, and model.json then has no
    input.channels, as every model before issue 16)."""
    import onnx

    _architecture(architecture)
    channels = check_channels(input_channels)
    inp: dict[str, Any] = {"name": input_name(channels)}
    if channels != FLUX_ONLY:
        inp["channels"] = list(channels)
    inp["normalisation"] = {"kind": "none"}
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    onnx_path = d / "model.onnx"
    onnx.save_model(onnx_model, onnx_path)
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "architecture": architecture,
        "grid": grid_metadata(),
        "input": inp,
        "outputs": _output_descriptions(architecture),
        "thresholds": dict(thresholds or {"default": 0.5}),
        "trained": trained,
        "training": dict(training or {}),
        "metrics": dict(metrics or {}),
        "mgfast_version": _core.__version__,
        "onnx_sha256": _sha256(onnx_path),
    }
    if calibration is not None:
        meta["calibration"] = {
            "kind": "isotonic, piecewise linear",
            "x": [float(v) for v in calibration[0]],
            "y": [float(v) for v in calibration[1]],
        }
        if sigma_scale:
            meta["calibration"]["sigma_scale"] = {k: float(v) for k, v in sigma_scale.items()}
    (d / "model.json").write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
    return d


def _output_descriptions(architecture: str) -> dict[str, str]:
    fcn = {
        "cell_logits": f"logit per {FCN_CELL}-pixel cell",
        "cell_offsets": "λ2796 pixel within the cell",
        "none_logit": "logit of 'no absorber', softmaxed with the cell logits",
    }
    multi = {
        MULTI_OUTPUT: f"(N, cells, {MULTI_MAPS}) per {FCN_CELL}-pixel cell: logit, "
        "offset, ln b(offset), ln EW2796, ln σ, ln EW2803, ln σ (mgfast.absorbers)"
    }
    if architecture == "mgfast_fcn":
        return fcn
    if architecture == "mgfast_multi":
        return multi
    if architecture == "mgfast_dual":
        return fcn | multi
    return {"probability": "sigmoid, 0-1", "lambda2796": "observed-frame Å"}


def write_random_model(
    directory: str | Path,
    architecture: str = "bycycle2023",
    seed: int = 0,
    *,
    conv2d: bool = False,
    channels: Sequence[str] | None = None,
) -> Path:
    """A model directory with random He-initialised weights ("trained": false): same shapes and
    cost as a trained model, for building and timing the backends before one exists.
    ``channels``: its input channels (input_features; None: the flux alone)."""
    onnx_model = build_onnx(
        architecture,
        random_weights(architecture, seed, channels=channels),
        conv2d=conv2d,
        channels=channels,
    )
    return save_model(
        directory,
        onnx_model,
        architecture,
        trained=False,
        training={"init": "he_normal (untruncated), zero biases", "seed": seed},
        input_channels=channels,
    )


# --- Loading. --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Model:
    """A loaded model: its metadata and its layers (weights as contiguous float32 arrays)."""

    path: Path
    architecture: str
    n_pix: int
    layers: tuple[Layer, ...]
    thresholds: dict[str, float]
    trained: bool
    sha256: str
    metadata: dict[str, Any] = field(repr=False)

    @property
    def onnx_path(self) -> Path:
        return self.path / "model.onnx"

    @property
    def input_channels(self) -> tuple[str, ...]:
        """What the network reads (input_features): ("flux",) for the one-channel models,
        model.json's input.channels otherwise."""
        inp = self.metadata.get("input")
        return check_channels(inp.get("channels") if isinstance(inp, dict) else None)

    @property
    def reads_noise(self) -> bool:
        """Whether the network reads more than the flux (then it needs ivar beside it)."""
        return self.input_channels != FLUX_ONLY

    @property
    def calibration(self) -> tuple[np.ndarray, np.ndarray] | None:
        """mgfast_multi's score-to-probability curve (x, y), or None."""
        c = self.metadata.get("calibration")
        if not isinstance(c, dict):
            return None
        return np.asarray(c["x"], np.float64), np.asarray(c["y"], np.float64)

    @property
    def sigma_scale(self) -> dict[str, float] | None:
        """mgfast_multi's factors on its stated uncertainties (68 % coverage), or None."""
        c = self.metadata.get("calibration")
        scale = c.get("sigma_scale") if isinstance(c, dict) else None
        return {k: float(v) for k, v in scale.items()} if isinstance(scale, dict) else None

    @functools.cached_property
    def error_model(self) -> ErrorModel | None:
        """Corrections to the catalogue's stated errors (mgfast.absorbers.ErrorModel), or None."""
        c = self.metadata.get("calibration")
        e = c.get("error_model") if isinstance(c, dict) else None
        return None if e is None else ErrorModel.from_json(e)

    @property
    def flops_per_spectrum(self) -> float:
        return flops_per_spectrum(self.layers, self.n_pix)

    @property
    def n_parameters(self) -> int:
        return sum(
            layer.weight.size + layer.bias.size
            for layer in self.layers
            if isinstance(layer, Conv1d | Dense | Heads | Heatmap)
        )


def load_model(path: str | Path) -> Model:
    """Read and check a model directory (model.onnx + model.json).

    Raises FileNotFoundError when a file is missing and ValueError when the model is corrupt
    (SHA-256 mismatch, unreadable ONNX), made for another grid, of an unknown architecture, or
    when its graph does not match the architecture model.json names.
    """
    d = Path(path)
    if not d.is_dir():
        raise FileNotFoundError(f"model {d}: no such directory (expected model.onnx + model.json)")
    json_path, onnx_path = d / "model.json", d / "model.onnx"
    for p in (json_path, onnx_path):
        if not p.is_file():
            raise FileNotFoundError(
                f"model {d}: {p.name} is missing (a model is model.onnx + model.json)"
            )
    if json_path.stat().st_size > _MAX_JSON_BYTES:
        raise ValueError(f"{json_path}: larger than {_MAX_JSON_BYTES} bytes, not a model.json")
    try:
        meta = json.loads(json_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{json_path}: not valid JSON ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f'{json_path}: not an mgfast model.json (expected "format": "{FORMAT}")')
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        raise ValueError(
            f"{json_path}: format_version {version!r}, this mgfast reads {FORMAT_VERSION}; "
            "upgrade mgfast or re-export the model"
        )
    arch = meta.get("architecture")
    if arch not in ARCHITECTURES:
        raise ValueError(
            f"{json_path}: unknown architecture {arch!r}; this mgfast knows "
            f"{', '.join(sorted(ARCHITECTURES))}"
        )
    _check_grid(meta.get("grid"), json_path)
    inp = meta.get("input")
    norm = inp.get("normalisation") if isinstance(inp, dict) else None
    norm = norm.get("kind") if isinstance(norm, dict) else norm
    if norm != "none":
        raise ValueError(
            f"{json_path}: input normalisation {norm!r} is not supported (only 'none')"
        )
    raw_channels = inp.get("channels") if isinstance(inp, dict) else None
    try:
        if raw_channels is not None and not isinstance(raw_channels, list):
            raise ValueError(f"input channels {raw_channels!r}: expected a list of names")
        channels = check_channels(raw_channels)
    except ValueError as e:
        raise ValueError(f"{json_path}: {e}") from None
    if channels != FLUX_ONLY and arch not in FCN_ARCHITECTURES:
        raise ValueError(f"{json_path}: architecture {arch!r} reads the flux alone, not {channels}")
    thresholds = meta.get("thresholds")
    if not isinstance(thresholds, dict) or not all(
        isinstance(v, int | float) and 0 <= v <= 1 for v in thresholds.values()
    ):
        raise ValueError(f"{json_path}: thresholds must map names to numbers in 0-1")
    if "default" not in thresholds:
        raise ValueError(f"{json_path}: thresholds.default missing (expected a number in 0-1)")

    digest = _sha256(onnx_path)
    if digest != meta.get("onnx_sha256"):
        raise ValueError(
            f"{onnx_path}: SHA-256 {digest} does not match model.json's "
            f"{meta.get('onnx_sha256')!r}: the file is truncated, corrupt or not this model's"
        )
    if arch in FCN_ARCHITECTURES:
        layers = _read_fcn_onnx(onnx_path, arch, channels)
    else:
        layers = _read_onnx(onnx_path, arch)
    cal = meta.get("calibration")
    if cal is not None and not (
        isinstance(cal, dict)
        and isinstance(cal.get("x"), list)
        and isinstance(cal.get("y"), list)
        and len(cal["x"]) == len(cal["y"]) >= 2
        and all(isinstance(v, int | float) for v in cal["x"] + cal["y"])
    ):
        raise ValueError(f"{json_path}: calibration must hold lists x and y of equal length")
    model = Model(
        path=d,
        architecture=arch,
        n_pix=grid.N_PIX,
        layers=tuple(layers),
        thresholds={k: float(v) for k, v in thresholds.items()},
        trained=bool(meta.get("trained", False)),
        sha256=digest,
        metadata=meta,
    )
    try:
        model.error_model  # noqa: B018  (parsed now, once: a malformed one is refused at load)
    except ValueError as e:
        raise ValueError(f"{json_path}: {e}") from None
    return model


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _architecture(name: str) -> tuple[LayerSpec, ...]:
    try:
        return ARCHITECTURES[name]
    except KeyError:
        raise ValueError(
            f"architecture {name!r} unknown; known: {', '.join(sorted(ARCHITECTURES))}"
        ) from None


def _check_grid(g: Any, where: Path) -> None:
    want = grid_metadata()
    if not isinstance(g, dict):
        raise ValueError(f"{where}: no grid definition (expected n_pix {want['n_pix']} and arms)")
    diffs = []
    if g.get("n_pix") != want["n_pix"]:
        diffs.append(f"n_pix {g.get('n_pix')!r} (mgfast.grid: {want['n_pix']})")
    step = g.get("dlnlambda")
    if (
        not isinstance(step, int | float)
        or abs(step - want["dlnlambda"]) > 1e-9 * want["dlnlambda"]
    ):
        diffs.append(f"dlnlambda {step!r} (mgfast.grid: {want['dlnlambda']!r})")
    arms = g.get("arms")
    if not isinstance(arms, list) or len(arms) != len(want["arms"]):
        diffs.append(f"arms {arms!r} (mgfast.grid: {len(want['arms'])} arms)")
    else:
        for a, w in zip(arms, want["arms"], strict=True):
            for k, v in w.items():
                got = a.get(k) if isinstance(a, dict) else None
                same = (
                    isinstance(got, int | float) and abs(got - v) <= 1e-6 * abs(v)
                    if isinstance(v, float)
                    else got == v
                )
                if not same:
                    diffs.append(f"arm {w['name']} {k} {got!r} (mgfast.grid: {v!r})")
    if diffs:
        raise ValueError(
            f"{where}: the model was made for another spectral grid: {'; '.join(diffs)}. "
            "Use a model exported for this mgfast's grid"
        )


def _read_onnx(path: Path, arch: str) -> list[Layer]:
    """Walk the canonical graph that build_onnx writes (1-D or height-1 2-D convolutions) and
    return its layers in the backends' layouts, checked against the architecture."""
    import onnx
    from google.protobuf.message import DecodeError
    from onnx import numpy_helper

    try:
        m = onnx.load_model(path)
    except (DecodeError, ValueError, OSError) as e:
        raise ValueError(f"{path}: not a readable ONNX file ({e})") from None
    g = m.graph
    where = f"{path}"
    consts: dict[str, np.ndarray] = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    for nd in g.node:
        if nd.op_type == "Constant":
            consts[nd.output[0]] = numpy_helper.to_array(nd.attribute[0].t)
    inputs = [i for i in g.input if i.name not in consts]
    if len(inputs) != 1:
        raise ValueError(f"{where}: expected one input, found {[i.name for i in inputs]}")
    dims = inputs[0].type.tensor_type.shape.dim
    if len(dims) != 2 or dims[1].dim_value != grid.N_PIX:
        shape = [d.dim_value or d.dim_param for d in dims]
        raise ValueError(f"{where}: input shape {shape}, expected (N, {grid.N_PIX})")
    outs = sorted(o.name for o in g.output)
    if outs != sorted(OUTPUT_NAMES):
        raise ValueError(f"{where}: outputs {outs}, expected {list(OUTPUT_NAMES)}")

    consumers: dict[str, list[Any]] = {}
    for nd in g.node:
        for i in nd.input:
            consumers.setdefault(i, []).append(nd)

    def attrs(nd: Any) -> dict[str, Any]:
        return {a.name: onnx.helper.get_attribute_value(a) for a in nd.attribute}

    def only(x: str) -> Any:
        c = consumers.get(x, [])
        if len(c) != 1:
            raise ValueError(f"{where}: tensor {x!r} feeds {len(c)} nodes where one was expected")
        return c[0]

    def weight(nd: Any, k: int) -> np.ndarray:
        if len(nd.input) <= k or nd.input[k] not in consts:
            raise ValueError(f"{where}: node {nd.name!r} has no constant input {k}")
        return consts[nd.input[k]]

    def bad(nd: Any, why: str) -> ValueError:
        return ValueError(f"{where}: node {nd.name!r} ({nd.op_type}): {why}")

    def affine(nd: Any) -> tuple[Any, np.ndarray, np.ndarray]:
        """A Gemm, or MatMul + Add, starting at nd: (last node, weight (n_out, n_in), bias)."""
        if nd.op_type == "Gemm":
            a = attrs(nd)
            if a.get("alpha", 1.0) != 1.0 or a.get("beta", 1.0) != 1.0 or a.get("transA", 0):
                raise bad(nd, "only alpha = beta = 1, transA = 0 is supported")
            w = weight(nd, 1)
            w = w if a.get("transB", 0) else w.T
            return nd, w, weight(nd, 2).reshape(-1)
        if nd.op_type != "MatMul":
            raise bad(nd, "expected MatMul or Gemm")
        w = weight(nd, 1).T
        add = only(nd.output[0])
        if add.op_type != "Add":
            raise bad(add, "expected the bias Add after MatMul")
        b = weight(add, 1 if add.input[0] == nd.output[0] else 0)
        return add, w, b.reshape(-1)

    def then_relu(nd: Any) -> tuple[Any, bool]:
        c = consumers.get(nd.output[0], [])
        if len(c) == 1 and c[0].op_type == "Relu":
            return c[0], True
        return nd, False

    layers: list[Layer] = []
    first = only(inputs[0].name)
    if first.op_type != "Unsqueeze":
        raise bad(first, "expected Unsqueeze of the input to (N, 1, n_pix) or (N, 1, 1, n_pix)")
    axes = (
        consts[first.input[1]] if len(first.input) > 1 else np.array(attrs(first).get("axes", []))
    )
    rank = 2 + len(axes)
    if sorted(np.asarray(axes).tolist()) not in ([1], [1, 2]):
        raise bad(first, f"axes {axes.tolist()}, expected [1] or [1, 2]")
    x = first.output[0]
    while True:
        nd = only(x)
        op = nd.op_type
        if op == "Conv":
            a = attrs(nd)
            w = weight(nd, 1)
            if w.ndim != rank or (rank == 4 and w.shape[2] != 1):
                raise bad(nd, f"weight shape {w.shape}, expected (O, I, K) or (O, I, 1, K)")
            ones = [1] * (rank - 2)
            if (
                a.get("strides", ones) != ones
                or a.get("dilations", ones) != ones
                or any(a.get("pads", [0]))
                or a.get("group", 1) != 1
                or a.get("auto_pad", b"NOTSET") not in (b"NOTSET", b"VALID")
            ):
                raise bad(
                    nd, "only valid, stride-1, undilated, ungrouped convolutions are supported"
                )
            b = weight(nd, 2) if len(nd.input) > 2 else np.zeros(w.shape[0], np.float32)
            nd, relu = then_relu(nd)
            layers.append(Conv1d(_f32(w.reshape(w.shape[0], w.shape[1], -1)), _f32(b), relu))
        elif op == "AveragePool":
            a = attrs(nd)
            k = a.get("kernel_shape", [])
            if (
                k[:-1] != [1] * (rank - 3)
                or a.get("strides") != k
                or any(a.get("pads", [0]))
                or a.get("ceil_mode", 0)
            ):
                raise bad(nd, "only valid, non-overlapping (stride = size) pooling is supported")
            layers.append(AvgPool1d(int(k[-1])))
        elif op == "Transpose":
            perm = attrs(nd).get("perm")
            if perm != ([0, 2, 1] if rank == 3 else [0, 2, 3, 1]):
                raise bad(nd, f"perm {perm}: only the transpose to channels-last is supported")
            nd = only(nd.output[0])
            if nd.op_type not in ("Flatten", "Reshape"):
                raise bad(nd, "expected Flatten after the transpose to channels-last")
            layers.append(Flatten())
        elif op in ("Gemm", "MatMul"):
            nd, w, b = affine(nd)
            nd, relu = then_relu(nd)
            layers.append(Dense(_f32(w), _f32(b), relu))
            if len(consumers.get(nd.output[0], [])) == 2:  # the fork into the two heads
                layers.append(_heads(consumers[nd.output[0]], consumers, affine, bad, where))
                break
        else:
            raise bad(nd, "operator not supported by mgfast's backends")
        x = nd.output[0]

    _match(layers, _architecture(arch), arch, where)
    return layers


def _heads(
    starts: list[Any], consumers: dict[str, list[Any]], affine: Any, bad: Any, where: str
) -> Heads:
    rows: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for start in starts:
        nd, w, b = affine(start)
        act = consumers.get(nd.output[0], [])
        if len(act) != 1:
            raise bad(nd, "expected one activation after a head")
        want = {"Sigmoid": OUTPUT_NAMES[0], "Relu": OUTPUT_NAMES[1]}.get(act[0].op_type)
        if want is None or act[0].output[0] != want or want in rows:
            raise bad(act[0], "heads must be Sigmoid -> 'probability' and Relu -> 'lambda2796'")
        if w.shape[0] != 1 or b.shape != (1,):
            raise bad(nd, f"head {want} has {w.shape[0]} outputs, expected 1")
        rows[want] = (w, b)
    if len(rows) != 2:
        raise ValueError(f"{where}: expected the two heads {list(OUTPUT_NAMES)}")
    w = np.concatenate([rows[o][0] for o in OUTPUT_NAMES])
    b = np.concatenate([rows[o][1] for o in OUTPUT_NAMES])
    return Heads(_f32(w), _f32(b))


def _f32(a: np.ndarray) -> np.ndarray:
    out = np.ascontiguousarray(a, dtype=np.float32)
    out.setflags(write=False)
    return out


def _match(layers: list[Layer], specs: Sequence[LayerSpec], arch: str, where: str) -> None:
    """Refuse a graph whose layers differ from the architecture model.json names."""

    def describe(x: Layer | LayerSpec) -> str:
        if isinstance(x, Conv1d):
            return f"conv1d {x.c_out} k{x.kernel}" + (" relu" if x.relu else "")
        if isinstance(x, ConvSpec):
            return f"conv1d {x.filters} k{x.kernel} relu"
        if isinstance(x, AvgPool1d | PoolSpec):
            return f"avgpool {getattr(x, 'kernel', getattr(x, 'size', 0))}"
        if isinstance(x, Flatten | FlattenSpec):
            return "flatten"
        if isinstance(x, Dense):
            return f"dense {x.n_out}" + (" relu" if x.relu else "")
        if isinstance(x, DenseSpec):
            return f"dense {x.units} relu"
        return "heads"

    got = [describe(la) for la in layers]
    want = [describe(s) for s in specs]
    if got != want:
        raise ValueError(
            f"{where}: the graph is not architecture {arch!r} that model.json names: "
            f"layers [{', '.join(got)}], expected [{', '.join(want)}]"
        )
    shapes = _shapes(specs, grid.N_PIX)
    for i, (la, (c, _)) in enumerate(zip(layers, shapes, strict=False)):
        n_in = getattr(la, "c_in", getattr(la, "n_in", c))
        if n_in != c:
            raise ValueError(f"{where}: layer {i} ({got[i]}) reads {n_in} inputs, expected {c}")


# --- mgfast_fcn: the canonical graph and its reader. ------------------------------------------


def _fcn_onnx(
    weights: Sequence[tuple[np.ndarray, np.ndarray]],
    n_pix: int,
    arch: str = "mgfast_fcn",
    channels: tuple[str, ...] = FLUX_ONLY,
) -> Any:
    """The graph of a fully convolutional architecture (training/models.py) with Keras-layout
    weights: the trunk's Conv1D kernels (kernel, c_in, c_out) with biases, then
    - mgfast_fcn: the cell-logit and cell-offset Conv1D kernels (1, C, 1) and the none-logit
      Dense kernel (2C, 1); outputs the raw heads cell_logits and cell_offsets (N, cells) and
      none_logit (N, 1), decoded by mgfast (the backend, decode.py);
    - mgfast_multi: the cell-logit (1, C, 1) and cell-maps (1, C, 6) Conv1D kernels, written as
      one 1x1 convolution; output cell_maps (N, cells, 7), decoded by mgfast.absorbers;
    - mgfast_dual: mgfast_fcn's trunk and three heads, then mgfast_multi's head convolution
      (MULTI_CONVS[-1]), cell-logit and cell-maps kernels on the same trunk; both outputs."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    convs = trunk_convs(arch)
    n_head = {"mgfast_multi": 2, "mgfast_fcn": 3, "mgfast_dual": 6}[arch]
    w = list(weights)
    if len(w) != len(convs) + n_head:
        raise ValueError(f"weights: {arch} has {len(convs) + n_head} weighted layers, got {len(w)}")
    nodes: list[Any] = []
    inits: list[Any] = []

    def const(name: str, a: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.ascontiguousarray(a, dtype=a.dtype), name))
        return name

    def node(op: str, inputs: list[str], name: str, out: str | None = None, **attrs: Any) -> str:
        nodes.append(helper.make_node(op, inputs, [out or name], name=name, **attrs))
        return out or name

    def conv(i: int, x: str, spec: tuple[int, int, int, int], kw: np.ndarray, kb: np.ndarray,
             n: int, c: int) -> tuple[str, int, int]:  # fmt: skip
        filters, k, stride, dil = spec
        _check_keras(kw, kb, (k, c, filters), f"conv{i}")
        pl, pr = same_padding(n, k, stride, dil)
        kernel = np.ascontiguousarray(np.transpose(kw, (2, 1, 0)), dtype=np.float32)
        x = node(
            "Conv",
            [x, const(f"conv{i}/kernel", kernel), const(f"conv{i}/bias", kb)],
            f"conv{i}",
            kernel_shape=[k],
            strides=[stride],
            dilations=[dil],
            pads=[pl, pr],
        )
        return node("Relu", [x], f"conv{i}/relu"), -(-n // stride), filters

    n_ch = len(channels)
    if n_ch == 1:
        x = node(
            "Unsqueeze", [INPUT_NAME, const("unsqueeze_axes", np.array([1], np.int64))], "channels"
        )
        x = node("Mul", [x, const("affine/scale", np.array(-1.0, np.float32))], "affine/mul")
        x = node("Add", [x, const("affine/offset", np.array(1.0, np.float32))], "affine/add")
    else:  # (N, C, n_pix): the affine map on the flux (channel 0), the others as they are
        scale = np.ones((n_ch, 1), np.float32)
        offset = np.zeros((n_ch, 1), np.float32)
        scale[0], offset[0] = -1.0, 1.0
        x = node("Mul", [FEATURES_NAME, const("affine/scale", scale)], "affine/mul")
        x = node("Add", [x, const("affine/offset", offset)], "affine/add")
    n, c = n_pix, n_ch
    for i, (spec, (kw, kb)) in enumerate(zip(convs, w, strict=False)):
        x, n, c = conv(i, x, spec, kw, kb, n, c)
    heads = w[len(convs) :]
    outputs = []
    if arch in ("mgfast_fcn", "mgfast_dual"):
        (cw, cb), (ow, ob), (nw, nb) = heads[:3]
        _check_keras(cw, cb, (1, c, 1), "cell_logit")
        _check_keras(ow, ob, (1, c, 1), "cell_offset")
        _check_keras(nw, nb, (2 * c, 1), "none_logit")
        flat_axes = const("squeeze_axes", np.array([1], np.int64))
        for name, kw, kb, out in (
            ("cell", cw, cb, FCN_OUTPUTS[0]),
            ("offset", ow, ob, FCN_OUTPUTS[1]),
        ):
            y = node(
                "Conv",
                [
                    x,
                    const(f"{name}/kernel", np.transpose(kw, (2, 1, 0)).copy()),
                    const(f"{name}/bias", kb),
                ],
                f"{name}",
                kernel_shape=[1],
            )
            node("Squeeze", [y, flat_axes], f"{name}/squeeze", out=out)
        mx = node("GlobalMaxPool", [x], "global_max")
        mean = node("GlobalAveragePool", [x], "global_mean")
        pooled = node("Concat", [mx, mean], "pooled", axis=1)
        pooled = node("Flatten", [pooled], "pooled/flatten", axis=1)
        y = node("MatMul", [pooled, const("none/kernel", nw)], "none/matmul")
        node("Add", [y, const("none/bias", nb)], "none/add", out=FCN_OUTPUTS[2])
        outputs += [
            helper.make_tensor_value_info(FCN_OUTPUTS[0], TensorProto.FLOAT, ["N", n]),
            helper.make_tensor_value_info(FCN_OUTPUTS[1], TensorProto.FLOAT, ["N", n]),
            helper.make_tensor_value_info(FCN_OUTPUTS[2], TensorProto.FLOAT, ["N", 1]),
        ]
    if arch in ("mgfast_multi", "mgfast_dual"):
        if arch == "mgfast_dual":  # the map head's own convolution, on the shared trunk
            (kw, kb) = heads[3]
            x, n, c = conv(len(convs), x, MULTI_CONVS[-1], kw, kb, n, c)
        (lw, lb), (mw, mb) = heads[-2:]
        _check_keras(lw, lb, (1, c, 1), "cell_logit")
        _check_keras(mw, mb, (1, c, MULTI_MAPS - 1), "cell_maps")
        kernel = np.transpose(np.concatenate([lw, mw], axis=2), (2, 1, 0)).astype(np.float32)
        y = node(
            "Conv",
            [x, const("head/kernel", kernel), const("head/bias", np.concatenate([lb, mb]))],
            "head",
            kernel_shape=[1],
        )
        node("Transpose", [y], "head/transpose", out=MULTI_OUTPUT, perm=[0, 2, 1])
        outputs.append(
            helper.make_tensor_value_info(MULTI_OUTPUT, TensorProto.FLOAT, ["N", n, MULTI_MAPS])
        )
    in_shape = ["N", n_pix] if n_ch == 1 else ["N", n_ch, n_pix]
    graph = helper.make_graph(
        nodes,
        arch,
        [helper.make_tensor_value_info(input_name(channels), TensorProto.FLOAT, in_shape)],
        outputs,
        initializer=inits,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", ONNX_OPSET)],
        producer_name="mgfast",
        producer_version=_core.__version__,
    )
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def _read_fcn_onnx(
    path: Path, arch: str = "mgfast_fcn", channels: tuple[str, ...] = FLUX_ONLY
) -> list[Layer]:
    """The layers of a graph _fcn_onnx wrote, found by name and checked against the trunk and
    the input channels model.json names."""
    import onnx
    from google.protobuf.message import DecodeError
    from onnx import numpy_helper

    try:
        m = onnx.load_model(path)
    except (DecodeError, ValueError, OSError) as e:
        raise ValueError(f"{path}: not a readable ONNX file ({e})") from None
    g = m.graph
    consts = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    nodes = {nd.name: nd for nd in g.node}
    outs = sorted(o.name for o in g.output)
    expected = sorted(
        {"mgfast_multi": [MULTI_OUTPUT], "mgfast_fcn": list(FCN_OUTPUTS)}.get(
            arch, [*FCN_OUTPUTS, MULTI_OUTPUT]
        )
    )
    if outs != expected:
        raise ValueError(f"{path}: outputs {outs}, expected {expected}")
    n_ch = len(channels)
    want_in = (input_name(channels), ["N", grid.N_PIX] if n_ch == 1 else ["N", n_ch, grid.N_PIX])
    ins = [i for i in g.input if i.name not in consts]
    got_in = [
        (i.name, [d.dim_value or d.dim_param for d in i.type.tensor_type.shape.dim]) for i in ins
    ]
    if got_in != [want_in]:
        raise ValueError(
            f"{path}: input {got_in}, expected {want_in[0]!r} {tuple(want_in[1])} for the input "
            f"channels {list(channels)} model.json names"
        )

    def get(name: str) -> np.ndarray:
        if name not in consts:
            raise ValueError(f"{path}: {name} missing: not an {arch} graph")
        return np.ascontiguousarray(consts[name], dtype=np.float32)

    def conv(i: int, spec: tuple[int, int, int, int]) -> Conv1d:
        filters, k, stride, dil = spec
        nd = nodes.get(f"conv{i}")
        if nd is None:
            raise ValueError(f"{path}: node conv{i} missing: not an {arch} graph")
        a = {x.name: onnx.helper.get_attribute_value(x) for x in nd.attribute}
        kernel = get(f"conv{i}/kernel")
        if (
            kernel.shape[0] != filters
            or kernel.shape[2] != k
            or list(a.get("strides", [1])) != [stride]
            or list(a.get("dilations", [1])) != [dil]
        ):
            raise ValueError(f"{path}: conv{i} does not match {arch}")
        pl, pr = (int(v) for v in a.get("pads", [0, 0]))
        return Conv1d(kernel, get(f"conv{i}/bias"), True, stride, dil, pl, pr)

    scale, offset = get("affine/scale").reshape(-1), get("affine/offset").reshape(-1)
    if (
        scale.size != n_ch
        or offset.size != n_ch
        or (n_ch > 1 and not ((scale[1:] == 1).all() and (offset[1:] == 0).all()))
    ):
        raise ValueError(f"{path}: the affine input map must act on the flux (channel 0) only")
    layers: list[Layer] = [Affine(float(scale[0]), float(offset[0]))]
    convs = trunk_convs(arch)
    layers += [conv(i, spec) for i, spec in enumerate(convs)]
    first = layers[1]
    assert isinstance(first, Conv1d)
    if first.c_in != n_ch:
        raise ValueError(f"{path}: conv0 reads {first.c_in} channels, model.json names {n_ch}")
    c = convs[-1][0]
    if arch in ("mgfast_fcn", "mgfast_dual"):
        cw, ow = get("cell/kernel").reshape(c), get("offset/kernel").reshape(c)
        nw = get("none/kernel").reshape(2 * c)
        bias = np.concatenate([get("cell/bias"), get("offset/bias"), get("none/bias")]).reshape(3)
        layers.append(Heatmap(np.concatenate([cw, ow, nw]).astype(np.float32), bias, FCN_CELL))
    if arch == "mgfast_dual":
        layers.append(Branch())
        layers.append(conv(len(convs), MULTI_CONVS[-1]))
        c = MULTI_CONVS[-1][0]
    if arch in ("mgfast_multi", "mgfast_dual"):
        kernel = get("head/kernel")
        if kernel.shape != (MULTI_MAPS, c, 1):
            raise ValueError(f"{path}: head kernel {kernel.shape}, expected {(MULTI_MAPS, c, 1)}")
        layers.append(Conv1d(kernel, get("head/bias").reshape(MULTI_MAPS), False))
    return layers


def decode_heatmap(
    cells: np.ndarray, offsets: np.ndarray, none: np.ndarray, cell: int = FCN_CELL
) -> tuple[np.ndarray, np.ndarray]:
    """mgfast_fcn's raw outputs to (probability, λ2796): softmax over [cell logits, none logit],
    probability = 1 − p(none); λ2796 at pixel cell · argmax + offset (clipped to its cell). The
    CPU backend decodes the same way in C++ (heatmap_decode in src/cpp/backend_cpu.cpp)."""
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
