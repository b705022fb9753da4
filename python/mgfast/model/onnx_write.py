"""Writing: the canonical ONNX graph of an architecture with given weights, random weights."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import _core, grid
from ..simulate import NO_ABSORBER_LAMBDA
from .spec import (
    FCN_ARCHITECTURES,
    FCN_CELL,
    FCN_CONVS,
    FCN_OUTPUTS,
    FEATURES_NAME,
    FLUX_ONLY,
    INPUT_NAME,
    LAMBDA_HEAD_GAIN,
    MULTI_CONVS,
    MULTI_MAPS,
    MULTI_OUTPUT,
    ONNX_OPSET,
    OUTPUT_NAMES,
    ConvSpec,
    DenseSpec,
    FlattenSpec,
    HeadsSpec,
    PoolSpec,
    architecture_specs,
    check_channels,
    input_name,
    layer_shapes,
    same_padding,
    trunk_convs,
)

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
    from onnx import TensorProto, helper, numpy_helper

    specs = architecture_specs(architecture)
    n_pix = grid.N_PIX if n_pix is None else n_pix
    channels = check_channels(channels)
    if architecture in FCN_ARCHITECTURES:
        return _fcn_onnx(weights, n_pix, architecture, channels)
    if channels != FLUX_ONLY:
        raise ValueError(f"architecture {architecture!r} reads the flux alone, not {channels}")
    shapes = layer_shapes(specs, n_pix)
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
    outputs = [helper.make_tensor_value_info(o, TensorProto.FLOAT, ["N", 1]) for o in OUTPUT_NAMES]
    return _finish(nodes, architecture, INPUT_NAME, ["N", n_pix], outputs, inits)


def _finish(
    nodes: list[Any], name: str, input_name: str, in_shape: list[str | int], outputs: list[Any],
    inits: list[Any],
) -> Any:  # fmt: skip
    """The checked ONNX model of a graph: one float input, mgfast as its producer, opset
    ONNX_OPSET at IR version 8 (opset 17's: readable by ONNX Runtime and TensorRT of 2022 on)."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, in_shape)],
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
    specs = architecture_specs(architecture)
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
    shapes = layer_shapes(specs, grid.N_PIX if n_pix is None else n_pix)

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


# --- mgfast_fcn: the canonical graph and its reader. ------------------------------------------


def _fcn_onnx(
    weights: Sequence[tuple[np.ndarray, np.ndarray]],
    n_pix: int,
    arch: str = "mgfast_fcn",
    channels: tuple[str, ...] = FLUX_ONLY,
) -> Any:
    """The graph of a fully convolutional architecture (mgfast_train.models) with Keras-layout
    weights: the trunk's Conv1D kernels (kernel, c_in, c_out) with biases, then
    - mgfast_fcn: the cell-logit and cell-offset Conv1D kernels (1, C, 1) and the none-logit
      Dense kernel (2C, 1); outputs the raw heads cell_logits and cell_offsets (N, cells) and
      none_logit (N, 1), decoded by mgfast (the backend, decode.py);
    - mgfast_multi: the cell-logit (1, C, 1) and cell-maps (1, C, 6) Conv1D kernels, written as
      one 1x1 convolution; output cell_maps (N, cells, 7), decoded by mgfast.absorbers;
    - mgfast_dual: mgfast_fcn's trunk and three heads, then mgfast_multi's head convolution
      (MULTI_CONVS[-1]), cell-logit and cell-maps kernels on the same trunk; both outputs."""
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
    in_shape: list[str | int] = ["N", n_pix] if n_ch == 1 else ["N", n_ch, n_pix]
    return _finish(nodes, arch, input_name(channels), in_shape, outputs, inits)
