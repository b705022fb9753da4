"""Reading: the layers of a canonical ONNX graph, checked against its architecture."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .. import grid
from .spec import (
    FCN_CELL,
    FCN_OUTPUTS,
    FLUX_ONLY,
    MULTI_CONVS,
    MULTI_MAPS,
    MULTI_OUTPUT,
    OUTPUT_NAMES,
    Affine,
    AvgPool1d,
    Branch,
    Conv1d,
    ConvSpec,
    Dense,
    DenseSpec,
    Flatten,
    FlattenSpec,
    Heads,
    Heatmap,
    Layer,
    LayerSpec,
    PoolSpec,
    architecture_specs,
    input_name,
    layer_shapes,
    trunk_convs,
)


def read_onnx(path: Path, arch: str) -> list[Layer]:
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

    _match(layers, architecture_specs(arch), arch, where)
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
    shapes = layer_shapes(specs, grid.N_PIX)
    for i, (la, (c, _)) in enumerate(zip(layers, shapes, strict=False)):
        n_in = getattr(la, "c_in", getattr(la, "n_in", c))
        if n_in != c:
            raise ValueError(f"{where}: layer {i} ({got[i]}) reads {n_in} inputs, expected {c}")


def read_fcn_onnx(
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
