"""Keras 3 model definitions (backend-agnostic: JAX or TensorFlow).

- ``bycycle2023``: the paper's network exactly as tabulated (Szakacs et al. 2023, Fig. 4): valid
  convolutions and average pooling, two dense layers, a sigmoid class head and a ReLU λ2796 head
  (Å), trained with 300 × BCE + MAE.
- ``mgfast_fcn``: mgfast's own fully convolutional network: 'same' padding (no blind arm ends), a
  stride-4 feature map with dilated convolutions (receptive field > the 51-pixel doublet spacing),
  and a heatmap head: one logit per 4-pixel cell plus a "no absorber" logit, softmaxed together,
  and a sub-cell offset per cell. Probability = 1 − p(no absorber); λ2796 = the grid wavelength
  at 4 · argmax + offset. No arbitrary label for negatives, sub-pixel localisation, about a tenth
  of the paper network's FLOPs.

The FCN networks take ``channels``: what they read (mgfast.model.INPUT_CHANNELS, flux first;
default the flux alone, input (N, n_pix)). With more, the input is (N, n_pix, C) channels-last,
as mgfast.model.input_features(..., channels_last=True) makes it, and the affine first layer
maps the flux channel alone (docs/TRAINING.md, "Input channels"). ``set_weights_widening`` warm
starts such a network from a one-channel one.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
from keras import layers

import mgfast.model as mm

N_PIX = 6315  # mgfast.grid.N_PIX; training/ checks it against the package at start-up
FCN_STRIDE = 4


def bycycle2023(n_pix: int = N_PIX, channels: Sequence[str] | None = None) -> keras.Model:
    if mm.check_channels(channels) != mm.FLUX_ONLY:
        raise ValueError("bycycle2023 is the paper's network: it reads the flux only")
    inp = keras.Input((n_pix,), name="flux")
    x = layers.Reshape((n_pix, 1))(inp)
    x = layers.Conv1D(64, 10, activation="relu")(x)
    x = layers.AveragePooling1D(5)(x)
    x = layers.Conv1D(128, 10, activation="relu")(x)
    x = layers.AveragePooling1D(5)(x)
    for _ in range(3):
        x = layers.Conv1D(256, 10, activation="relu")(x)
    x = layers.AveragePooling1D(5)(x)
    x = layers.Flatten()(x)
    x = layers.Dense(512, activation="relu")(x)
    x = layers.Dense(512, activation="relu")(x)
    prob = layers.Dense(1, activation="sigmoid", name="probability")(x)
    lam = layers.Dense(1, activation="relu", name="lambda2796")(x)
    return keras.Model(inp, [prob, lam], name="bycycle2023")


CHANNEL_SEP = "+"  # a multi-channel model's Input layer is named by its channels: "flux+whitened"


def input_channels(net: keras.Model) -> tuple[str, ...]:
    """The input channels a Keras model reads (mgfast.model.INPUT_CHANNELS): ("flux",) for the
    one-channel models (input (N, n_pix)), else the names its Input layer carries."""
    if len(net.input.shape) == 2:
        return ("flux",)
    return mm.check_channels(net.input.name.split(CHANNEL_SEP))


def model_input_layer(n_pix: int, channels: Sequence[str] | None = None):  # type: ignore[no-untyped-def]
    """(Keras Input, (N, n_pix, C) tensor): flux only is the one-channel input (N, n_pix) of
    every model before issue 16; more channels are (N, n_pix, C), channels-last, in the order
    mgfast.model.input_features(..., channels_last=True) gives them."""
    channels = mm.check_channels(channels)
    if channels == mm.FLUX_ONLY:
        inp = keras.Input((n_pix,), name="flux")
        return inp, layers.Reshape((n_pix, 1))(inp)
    inp = keras.Input((n_pix, len(channels)), name=CHANNEL_SEP.join(channels))
    return inp, inp


def fcn_trunk(n_pix: int, width: int, channels: Sequence[str] | None = None):  # type: ignore[no-untyped-def]
    """The fully convolutional trunk shared by mgfast_fcn and mgfast_multi: (input, features on
    the stride-4 cells). mgfast.model.FCN_CONVS describes the same convolutions. ``channels``:
    the input channels (mgfast.model.INPUT_CHANNELS; None: flux only), flux first."""
    inp, x = model_input_layer(n_pix, channels)
    # Centre the flux on 0 (continuum 1): the network then sees absorption as positive signal.
    # The other channels are already 0 where there is nothing (masked pixels, no absorption).
    c = x.shape[-1]
    if c == 1:
        x = layers.Rescaling(-1.0, offset=1.0)(x)
    else:
        x = layers.Rescaling([-1.0] + [1.0] * (c - 1), offset=[1.0] + [0.0] * (c - 1))(x)
    x = layers.Conv1D(16, 7, padding="same", activation="relu")(x)
    x = layers.Conv1D(32, 5, strides=2, padding="same", activation="relu")(x)
    x = layers.Conv1D(32, 5, strides=2, padding="same", activation="relu")(x)
    for d in (1, 2, 4, 8, 16):
        x = layers.Conv1D(width, 3, dilation_rate=d, padding="same", activation="relu")(x)
    return inp, x


def mgfast_fcn(
    n_pix: int = N_PIX, width: int = 32, channels: Sequence[str] | None = None
) -> keras.Model:
    inp, x = fcn_trunk(n_pix, width, channels)
    cells = layers.Conv1D(1, 1, name="cell_logit")(x)
    offset = layers.Conv1D(1, 1, name="cell_offset")(x)
    pooled = layers.Concatenate()(
        [layers.GlobalMaxPooling1D()(x), layers.GlobalAveragePooling1D()(x)]
    )
    none = layers.Dense(1, name="none_logit")(pooled)
    cells = layers.Flatten(name="cells")(cells)
    offset = layers.Flatten(name="offsets")(offset)
    return keras.Model(inp, [cells, offset, none], name="mgfast_fcn")


# mgfast_multi's per-cell channels after the logit (the order of the head's outputs)
MULTI_CHANNELS = (
    "offset",
    "log_b_offset",
    "log_ew2796",
    "log_sigma2796",
    "log_ew2803",
    "log_sigma2803",
)


def mgfast_multi(
    n_pix: int = N_PIX, width: int = 32, channels: Sequence[str] | None = None
) -> keras.Model:
    """Every absorber in a sightline: mgfast_fcn's trunk, one more 'same' convolution for the
    head, and per 4-pixel cell a logit (an absorber's λ2796 lies in this cell; sigmoid, not
    softmax: any number of cells may fire) and six maps (mgfast.absorbers.CHANNELS): the sub-cell
    offset and the ln scale of its Laplace error, ln EW2796 and ln EW2803 (rest, Å) each with a
    ln σ. Outputs: logits (N, cells), maps (N, cells, 6)."""
    inp, x = fcn_trunk(n_pix, width, channels)
    x = layers.Conv1D(width, 3, padding="same", activation="relu", name="head_conv")(x)
    logits = layers.Flatten(name="logits")(layers.Conv1D(1, 1, name="cell_logit")(x))
    maps = layers.Conv1D(len(MULTI_CHANNELS), 1, name="cell_maps")(x)
    return keras.Model(inp, [logits, maps], name="mgfast_multi")


def mgfast_joint(
    n_pix: int = N_PIX, width: int = 32, channels: Sequence[str] | None = None
) -> keras.Model:
    """mgfast_fcn and mgfast_multi on one trunk, for training the trunk with both heads' losses
    (train.py --arch mgfast_joint): outputs mgfast_fcn's (cells, offsets, none) then
    mgfast_multi's (logits, maps). It is exported as mgfast_dual after split_joint."""
    inp, x = fcn_trunk(n_pix, width, channels)
    cells = layers.Flatten(name="cells")(layers.Conv1D(1, 1, name="cell_logit")(x))
    offset = layers.Flatten(name="offsets")(layers.Conv1D(1, 1, name="cell_offset")(x))
    pooled = layers.Concatenate()(
        [layers.GlobalMaxPooling1D()(x), layers.GlobalAveragePooling1D()(x)]
    )
    none = layers.Dense(1, name="none_logit")(pooled)
    h = layers.Conv1D(width, 3, padding="same", activation="relu", name="head_conv")(x)
    logits = layers.Flatten(name="logits")(layers.Conv1D(1, 1, name="multi_cell_logit")(h))
    maps = layers.Conv1D(len(MULTI_CHANNELS), 1, name="cell_maps")(h)
    return keras.Model(inp, [cells, offset, none, logits, maps], name="mgfast_joint")


# mgfast_joint's head layers: where each lives in mgfast_fcn or mgfast_multi
JOINT_HEADS = {
    "cell_logit": ("mgfast_fcn", "cell_logit"),
    "cell_offset": ("mgfast_fcn", "cell_offset"),
    "none_logit": ("mgfast_fcn", "none_logit"),
    "head_conv": ("mgfast_multi", "head_conv"),
    "multi_cell_logit": ("mgfast_multi", "cell_logit"),
    "cell_maps": ("mgfast_multi", "cell_maps"),
}
TRUNK_CONVS = 8  # the Conv1D layers of fcn_trunk, first in every network built on it


def trunk_convs(net: keras.Model) -> list:
    return [x for x in net.layers if isinstance(x, layers.Conv1D)][:TRUNK_CONVS]


def widen(w: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """A weight for ``shape`` from ``w``: w itself when the shapes agree, else a first
    convolution's kernel (k, c, filters) of a model with fewer input channels placed in front of
    zeros for the new channels (the wider model then computes exactly the narrower one's
    function: the new channels start with no effect)."""
    w = np.asarray(w)
    if w.shape == tuple(shape):
        return w
    if w.ndim == 3 and len(shape) == 3 and (w.shape[0], w.shape[2]) == (shape[0], shape[2]):
        if w.shape[1] < shape[1]:
            out = np.zeros(shape, w.dtype)
            out[:, : w.shape[1], :] = w
            return out
    raise ValueError(f"weights of shape {w.shape} cannot start a layer of shape {tuple(shape)}")


def set_weights_widening(dst: keras.Model | keras.layers.Layer, weights: list) -> None:
    """dst.set_weights(weights), the first convolution widened to dst's input channels (warm
    start of a multi-channel model from a one-channel run: widen)."""
    own = dst.get_weights()
    if len(own) != len(weights):
        raise ValueError(f"{len(weights)} weight arrays for a model that has {len(own)}")
    dst.set_weights([widen(w, o.shape) for w, o in zip(weights, own, strict=True)])


def copy_trunk(src: keras.Model, dst: keras.Model) -> None:
    for a, b in zip(trunk_convs(src), trunk_convs(dst), strict=True):
        set_weights_widening(b, a.get_weights())


def split_joint(joint: keras.Model) -> tuple[keras.Model, keras.Model]:
    """(mgfast_fcn, mgfast_multi) holding mgfast_joint's weights: one trunk, each its heads."""
    width = joint.get_layer("head_conv").filters
    ch = input_channels(joint)
    nets = {
        a: ARCHITECTURES[a](joint.input.shape[1], width, ch) for a in ("mgfast_fcn", "mgfast_multi")
    }
    for net in nets.values():
        copy_trunk(joint, net)
    for name, (arch, there) in JOINT_HEADS.items():
        nets[arch].get_layer(there).set_weights(joint.get_layer(name).get_weights())
    return nets["mgfast_fcn"], nets["mgfast_multi"]


def join(
    fcn: keras.Model, multi: keras.Model, channels: Sequence[str] | None = None
) -> keras.Model:
    """mgfast_joint from an mgfast_fcn (trunk and summary heads) and an mgfast_multi (its head;
    its trunk is not used); ``channels``: the joint model's input channels (None: fcn's; a
    one-channel fcn's first convolution is widened to them)."""
    channels = input_channels(fcn) if channels is None else channels
    joint = mgfast_joint(fcn.input.shape[1], multi.get_layer("head_conv").filters, channels)
    copy_trunk(fcn, joint)
    nets = {"mgfast_fcn": fcn, "mgfast_multi": multi}
    for name, (arch, there) in JOINT_HEADS.items():
        joint.get_layer(name).set_weights(nets[arch].get_layer(there).get_weights())
    return joint


ARCHITECTURES = {
    "bycycle2023": bycycle2023,
    "mgfast_fcn": mgfast_fcn,
    "mgfast_multi": mgfast_multi,
    "mgfast_joint": mgfast_joint,
}


def flops_per_spectrum(model: keras.Model) -> float:
    """Multiply-adds × 2 of the convolution and dense layers for one spectrum."""
    total = 0.0
    for layer in model.layers:
        if isinstance(layer, layers.Conv1D):
            out_len = layer.output.shape[1]
            k, cin = layer.kernel.shape[0], layer.kernel.shape[1]
            total += 2.0 * out_len * k * cin * layer.filters
        elif isinstance(layer, layers.Dense):
            total += 2.0 * layer.kernel.shape[0] * layer.kernel.shape[1]
    return total
