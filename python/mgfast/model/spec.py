"""The network's layers as the backends take them: the input channels, the architectures a
model may claim, the layer list with its weights (src/core/net/network.hpp), shapes and FLOPs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from .. import _core

FORMAT = "mgfast-model"
FORMAT_VERSION = 1
ONNX_OPSET = 17
INPUT_NAME = "flux"
FEATURES_NAME = "features"  # the ONNX input (N, C, n_pix) of a model with several channels
OUTPUT_NAMES = ("probability", "lambda2796")
MAX_JSON_BYTES = 1 << 20
LAMBDA_HEAD_GAIN = 1000.0  # random models only: see random_weights


# --- The network's input: the channels a model reads. -----------------------------------------
# Computed from the preprocessed spectra (normalised flux, 1 where masked; ivar, 0 where masked)
# by one function, input_features, for training and both engines (src/core/net/features.hpp).
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
    (src/core/net/features.hpp, one definition for training, the CPU and the GPU engine). ivar None:
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
        codes = [INPUT_CHANNELS.index(c) for c in chans]
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

# mgfast_fcn (mgfast_train.models): (filters, kernel, stride, dilation) of its convolutions, all
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


def layer_shapes(specs: Sequence[LayerSpec], n_pix: int) -> list[tuple[int, int]]:
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


def architecture_specs(name: str) -> tuple[LayerSpec, ...]:
    try:
        return ARCHITECTURES[name]
    except KeyError:
        raise ValueError(
            f"architecture {name!r} unknown; known: {', '.join(sorted(ARCHITECTURES))}"
        ) from None
