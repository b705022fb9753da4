"""The model format and the oneDNN CPU backend, checked against ONNX Runtime and a NumPy
forward pass with Keras' semantics (channels-last convolutions and flatten)."""

from __future__ import annotations

import json
import platform
import shutil
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

import mgfast
from mgfast import _core
from mgfast import model as mm
from mgfast.engine import CpuBackend

from conftest import engine_spectra

ort = pytest.importorskip("onnxruntime")
# PyPI has oneDNN 3.2 for Linux x86-64 only: there a build without it is a failure, not a skip.
ONEDNN_EXPECTED = sys.platform == "linux" and platform.machine() == "x86_64"
needs_onednn = pytest.mark.skipif(
    not _core.built_with_onednn and not ONEDNN_EXPECTED,
    reason="this mgfast was built without oneDNN (none on PyPI for this platform)",
)

N_COMPARE = 300  # spectra against ONNX Runtime here; bench/engine_cpu.py --check runs 10,000
PROB_TOL = 1e-4
LAMBDA_TOL = 0.05  # Å

# A second, small architecture, described like the paper's: exercises the builder's and the
# backend's generality in milliseconds: an odd first kernel, even kernels (the fast FIR path)
# with and without a pooling after them, another flatten size, one dense layer.
TINY = (
    mm.ConvSpec(8, 5),
    mm.PoolSpec(3),
    mm.ConvSpec(16, 6),
    mm.ConvSpec(16, 4),
    mm.PoolSpec(4),
    mm.FlattenSpec(),
    mm.DenseSpec(32),
    mm.HeadsSpec(),
)


@pytest.fixture(scope="module")
def paper_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return mm.write_random_model(tmp_path_factory.mktemp("paper"), "bycycle2023", seed=7)


@pytest.fixture(scope="module")
def paper(paper_dir: Path) -> mm.Model:
    return mm.load_model(paper_dir)


@pytest.fixture(scope="module")
def session(paper_dir: Path):
    return _session(paper_dir / "model.onnx")


@pytest.fixture(scope="module")
def backend(paper: mm.Model) -> CpuBackend:
    if not _core.built_with_onednn and not ONEDNN_EXPECTED:
        pytest.skip("this mgfast was built without oneDNN")
    return CpuBackend(paper, threads=2, batch_size=32)


@pytest.fixture
def tiny(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setitem(mm.ARCHITECTURES, "tiny", TINY)
    return "tiny"


def _session(path: Path):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def _ort(session, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p, lam = session.run(["probability", "lambda2796"], {"flux": x})
    return p[:, 0], lam[:, 0]


def _keras_forward(specs, weights, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """What Keras computes, in float64: (N, length, channels) activations throughout."""
    h = x.astype(np.float64)[:, :, None]
    it = iter(weights)
    for s in specs:
        if isinstance(s, mm.ConvSpec):
            w, b = next(it)  # (kernel, c_in, c_out)
            win = sliding_window_view(h, s.kernel, axis=1)  # (N, L', c_in, kernel)
            h = np.maximum(np.einsum("nlck,kco->nlo", win, w) + b, 0.0)
        elif isinstance(s, mm.PoolSpec):
            n_out = h.shape[1] // s.size
            h = h[:, : n_out * s.size].reshape(h.shape[0], n_out, s.size, -1).mean(axis=2)
        elif isinstance(s, mm.FlattenSpec):
            h = h.reshape(h.shape[0], -1)
        elif isinstance(s, mm.DenseSpec):
            w, b = next(it)
            h = np.maximum(h @ w + b, 0.0)
        else:
            (wp, bp), (wl, bl) = next(it), next(it)
            return 1.0 / (1.0 + np.exp(-(h @ wp + bp)[:, 0])), np.maximum(h @ wl + bl, 0)[:, 0]
    raise AssertionError("no heads")


# --- The model format. -----------------------------------------------------------------------


def test_random_model_has_the_papers_size_and_metadata(paper_dir: Path, paper: mm.Model):
    import onnx

    # The paper: ~7.75 M parameters and ~0.98 GFLOP per spectrum.
    assert paper.n_parameters == 7_753_282
    assert paper.flops_per_spectrum == pytest.approx(0.98e9, rel=0.005)
    meta = json.loads((paper_dir / "model.json").read_text())
    assert meta["architecture"] == "bycycle2023" and meta["trained"] is False
    assert meta["grid"]["n_pix"] == mgfast.grid.N_PIX == 6315
    assert [a["stop"] for a in meta["grid"]["arms"]] == [a.stop for a in mgfast.grid.ARMS]
    assert meta["thresholds"] == {"default": 0.5}
    assert meta["onnx_sha256"] == paper.sha256
    g = onnx.load(paper_dir / "model.onnx")
    assert g.opset_import[0].version >= 17
    dims = g.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "N" and dims[1].dim_value == 6315  # dynamic batch
    kinds = [type(la).__name__ for la in paper.layers]
    assert kinds == ["Conv1d", "AvgPool1d", "Conv1d", "AvgPool1d"] + ["Conv1d"] * 3 + [
        "AvgPool1d",
        "Flatten",
        "Dense",
        "Dense",
        "Heads",
    ]
    assert paper.layers[9].weight.shape == (512, 44 * 256)
    assert all(la.weight.flags.c_contiguous for la in paper.layers if hasattr(la, "weight"))


def test_onnx_graph_computes_what_keras_computes(tmp_path: Path, tiny: str):
    weights = mm.random_weights(tiny, seed=3)
    d = mm.save_model(tmp_path, mm.build_onnx(tiny, weights), tiny, trained=False)
    x = engine_spectra(6)
    p_ref, lam_ref = _keras_forward(TINY, weights, x)
    p, lam = _ort(_session(d / "model.onnx"), x)
    np.testing.assert_allclose(p, p_ref, atol=1e-5)
    np.testing.assert_allclose(lam, lam_ref, atol=LAMBDA_TOL)
    # The check can fail: the same weights read with a channels-first flatten give other numbers.
    c, length = mm.layer_shapes(TINY, mgfast.grid.N_PIX)[5]  # entering the flatten
    wrong = list(weights)
    w, b = wrong[3]  # the dense layer after the flatten, (length * c, units) in Keras' order
    wrong[3] = (w.reshape(c, length, -1).transpose(1, 0, 2).reshape(w.shape), b)
    assert np.abs(_keras_forward(TINY, wrong, x)[1] - lam_ref).max() > 10 * LAMBDA_TOL


def test_conv2d_export_loads_to_the_same_layers(tmp_path: Path, tiny: str):
    weights = mm.random_weights(tiny, seed=4)
    a = mm.load_model(
        mm.save_model(tmp_path / "a", mm.build_onnx(tiny, weights), tiny, trained=False)
    )
    b = mm.load_model(
        mm.save_model(
            tmp_path / "b", mm.build_onnx(tiny, weights, conv2d=True), tiny, trained=False
        )
    )
    for la, lb in zip(a.layers, b.layers, strict=True):
        assert type(la) is type(lb)
        if hasattr(la, "weight"):
            assert np.array_equal(la.weight, lb.weight) and np.array_equal(la.bias, lb.bias)
    x = engine_spectra(4)
    for got, want in zip(
        _ort(_session(b.onnx_path), x), _ort(_session(a.onnx_path), x), strict=True
    ):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def _write_json(d: Path, **changes) -> None:
    meta = json.loads((d / "model.json").read_text())
    for k, v in changes.items():
        meta[k] = v
    (d / "model.json").write_text(json.dumps(meta))


@pytest.fixture
def tiny_dir(tmp_path: Path, tiny: str) -> Path:
    return mm.write_random_model(tmp_path / "tiny", tiny, seed=5)


def test_missing_files(tmp_path: Path, tiny_dir: Path):
    with pytest.raises(FileNotFoundError, match="no such directory"):
        mm.load_model(tmp_path / "nowhere")
    for name in ("model.json", "model.onnx"):
        d = tmp_path / name
        shutil.copytree(tiny_dir, d)
        (d / name).unlink()
        with pytest.raises(FileNotFoundError, match=f"{name} is missing"):
            mm.load_model(d)


def test_truncated_or_changed_onnx(tiny_dir: Path):
    onnx_path = tiny_dir / "model.onnx"
    data = onnx_path.read_bytes()
    onnx_path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"SHA-256 .* truncated, corrupt"):
        mm.load_model(tiny_dir)
    # Truncated with a matching hash (a broken export): the parser says so.
    _write_json(tiny_dir, onnx_sha256=mm.file_sha256(onnx_path))
    with pytest.raises(ValueError, match="not a readable ONNX file"):
        mm.load_model(tiny_dir)


def test_sha_mismatch(tiny_dir: Path):
    _write_json(tiny_dir, onnx_sha256="0" * 64)
    with pytest.raises(ValueError, match=r"does not match model\.json's '0000"):
        mm.load_model(tiny_dir)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"n_pix": 6316}, r"another spectral grid: n_pix 6316 \(mgfast.grid: 6315\)"),
        ({"arm": ("red", "hi", 6800.0)}, r"arm red hi 6800.0 \(mgfast.grid: 6790.0\)"),
        ({"arm": ("green", "start", 2076)}, r"arm green start 2076 \(mgfast.grid: 2075\)"),
    ],
)
def test_wrong_grid(tiny_dir: Path, change: dict, message: str):
    g = mm.grid_metadata()
    if "n_pix" in change:
        g["n_pix"] = change["n_pix"]
    else:
        name, key, value = change["arm"]
        next(a for a in g["arms"] if a["name"] == name)[key] = value
    _write_json(tiny_dir, grid=g)
    with pytest.raises(ValueError, match=message):
        mm.load_model(tiny_dir)


def test_unknown_architecture(tiny_dir: Path):
    _write_json(tiny_dir, architecture="resnet1d")
    with pytest.raises(ValueError, match=r"unknown architecture 'resnet1d'.*bycycle2023"):
        mm.load_model(tiny_dir)


def test_graph_must_match_the_named_architecture(tiny_dir: Path):
    _write_json(tiny_dir, architecture="bycycle2023")
    with pytest.raises(ValueError, match=r"not architecture 'bycycle2023'.*conv1d 8 k5"):
        mm.load_model(tiny_dir)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "not valid JSON"),
        ('{"format": "other"}', "not an mgfast model.json"),
        ('{"format": "mgfast-model", "format_version": 99}', "format_version 99"),
    ],
)
def test_bad_json(tiny_dir: Path, text: str, message: str):
    (tiny_dir / "model.json").write_text(text)
    with pytest.raises(ValueError, match=message):
        mm.load_model(tiny_dir)


# --- The backend against ONNX Runtime. -------------------------------------------------------


@needs_onednn
def test_onednn_backend_was_built():
    assert _core.built_with_onednn, "rebuild with onednn-devel-cpu-gomp installed (pip install .)"
    assert _core.onednn_version().startswith("3.2.")


@needs_onednn
def test_matches_onnx_runtime(backend: CpuBackend, session):
    x = engine_spectra(N_COMPARE)
    p, lam = backend.infer(x)  # 300 = 9 full batches of 32 and a partial one of 12
    p_ref, lam_ref = _ort(session, x)
    assert p.shape == lam.shape == (N_COMPARE,) and p.dtype == lam.dtype == np.float32
    assert np.abs(p - p_ref).max() <= PROB_TOL
    assert np.abs(lam - lam_ref).max() <= LAMBDA_TOL
    # The outputs vary between spectra, so that agreement is not agreement on a constant.
    assert np.ptp(p_ref) > 100 * PROB_TOL and np.ptp(lam_ref) > 10 * LAMBDA_TOL


@needs_onednn
@pytest.mark.parametrize("fast_conv", [True, False])
def test_tiny_architecture_matches_keras(tiny_dir: Path, tiny: str, fast_conv: bool):
    m = mm.load_model(tiny_dir)
    x = engine_spectra(10)
    p, lam = CpuBackend(m, threads=2, batch_size=4, fast_conv=fast_conv).infer(x)
    p_ref, lam_ref = _keras_forward(TINY, mm.random_weights(tiny, seed=5), x)
    np.testing.assert_allclose(p, p_ref, atol=PROB_TOL)
    np.testing.assert_allclose(lam, lam_ref, atol=LAMBDA_TOL)


@needs_onednn
def test_fast_and_direct_convolutions_agree(paper: mm.Model):
    # The fast FIR path only adds and subtracts: within fp32 rounding of the direct one.
    x = engine_spectra(40, seed=6)
    fast = CpuBackend(paper, threads=2, batch_size=16).infer(x)
    direct = CpuBackend(paper, threads=2, batch_size=16, fast_conv=False).infer(x)
    assert np.abs(fast[0] - direct[0]).max() <= 1e-5
    assert np.abs(fast[1] - direct[1]).max() <= 0.01  # Å, on values near 5400


@needs_onednn
@pytest.mark.parametrize("n", [1, 7, 8, 9, 21])
def test_partial_batches(paper: mm.Model, session, n: int):
    b = CpuBackend(paper, threads=2, batch_size=8)
    x = engine_spectra(n, seed=10 + n)
    p, lam = b.infer(x)
    p_ref, lam_ref = _ort(session, x)
    assert p.shape == (n,)
    assert np.abs(p - p_ref).max() <= PROB_TOL
    assert np.abs(lam - lam_ref).max() <= LAMBDA_TOL


@needs_onednn
@pytest.mark.parametrize("fast_conv", [True, False])
def test_thread_counts_give_identical_outputs(paper: mm.Model, fast_conv: bool):
    x = engine_spectra(20, seed=2)
    one = CpuBackend(paper, threads=1, batch_size=8, fast_conv=fast_conv).infer(x)
    for threads in (2, 3):
        other = CpuBackend(paper, threads=threads, batch_size=8, fast_conv=fast_conv).infer(x)
        assert np.array_equal(one[0], other[0]) and np.array_equal(one[1], other[1])


@needs_onednn
def test_concurrent_calls_on_one_backend(backend: CpuBackend):
    xs = [engine_spectra(12, seed=s) for s in (3, 4)]
    want = [backend.infer(x) for x in xs]
    got: list = [None, None]

    def run(i: int) -> None:
        got[i] = backend.infer(xs[i])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for g, w in zip(got, want, strict=True):
        assert np.array_equal(g[0], w[0]) and np.array_equal(g[1], w[1])


@needs_onednn
def test_one_spectrum_and_none(backend: CpuBackend, session):
    x = engine_spectra(1, seed=5)
    p, lam = backend.infer(x[0])
    assert p.shape == (1,) and abs(p[0] - _ort(session, x)[0][0]) <= PROB_TOL
    p, lam = backend.infer(np.empty((0, mgfast.grid.N_PIX), np.float32))
    assert p.shape == lam.shape == (0,)


@needs_onednn
@pytest.mark.parametrize(
    ("flux", "message"),
    [
        (np.ones((2, 6314), np.float32), r"flux: expected shape \(N, 6315\)"),
        (np.ones((2, 1, 6315), np.float32), r"flux: expected shape \(N, 6315\)"),
        (np.ones((2, 6315), np.int32), "flux: expected floating-point values"),
        (np.ones((2, 6315), np.complex64), "flux: expected floating-point values"),
        (np.array([["a"] * 6315]), "flux: expected floating-point values"),
    ],
)
def test_bad_input(backend: CpuBackend, flux: np.ndarray, message: str):
    with pytest.raises(ValueError, match=message):
        backend.infer(flux)


@needs_onednn
def test_non_finite_input_is_refused(backend: CpuBackend):
    x = np.ones((4, mgfast.grid.N_PIX), np.float32)
    x[2] = np.nan
    with pytest.raises(ValueError, match="flux: spectrum 2 has no finite value"):
        backend.infer(x)
    x[2] = 1.0
    x[1, 100] = np.inf
    with pytest.raises(ValueError, match="flux: spectrum 1 has NaN or inf values"):
        backend.infer(x)


@needs_onednn
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"threads": -1}, "threads: expected an integer"),
        ({"batch_size": 0}, "batch_size: expected an integer"),
        ({"batch_size": 2.5}, "batch_size: expected an integer"),
    ],
)
def test_bad_backend_options(paper: mm.Model, kwargs: dict, message: str):
    with pytest.raises(ValueError, match=message):
        CpuBackend(paper, **kwargs)


# --- mgfast_fcn: strided, dilated, 'same'-padded convolutions and the heatmap head. ---------


@pytest.fixture(scope="module")
def fcn_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return mm.write_random_model(tmp_path_factory.mktemp("fcn"), "mgfast_fcn", seed=3)


def test_fcn_engine_matches_onnx_runtime_and_the_python_decoding(fcn_dir: Path):
    import onnxruntime as ort

    model = mm.load_model(fcn_dir)
    assert model.architecture == "mgfast_fcn"
    assert 70e6 < model.flops_per_spectrum < 100e6  # about a tenth of the paper's network
    sim = mgfast.simulate(200, seed=5, with_absorber_fraction=0.5)
    x = mgfast.preprocess(sim.flux, None, sim.err, allow_empty=True).flux
    sess = ort.InferenceSession(str(fcn_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    cells, offsets, none = sess.run(None, {"flux": x})
    assert cells.shape == (200, 1579) and none.shape == (200, 1)
    want_p, want_l = mm.decode_heatmap(cells, offsets, none)
    assert np.ptp(want_p) > 0.01 and np.ptp(want_l) > 100  # the comparison sees real variation
    for threads, batch in ((1, 7), (2, 64)):
        prob, lam = CpuBackend(model, threads=threads, batch_size=batch).infer(x)
        np.testing.assert_allclose(prob, want_p, atol=1e-4)
        # the argmax can only differ where two cells' logits tie within rounding
        assert np.mean(np.abs(lam - want_l) <= 0.05) >= 0.995


def test_same_padding_follows_keras():
    # TensorFlow's rule: output ceil(n / stride), the odd pixel of padding on the right
    assert mm.same_padding(6315, 5, 2, 1) == (2, 2)
    assert mm.same_padding(3158, 5, 2, 1) == (1, 2)
    assert mm.same_padding(1579, 3, 1, 16) == (16, 16)
    assert mm.same_padding(6315, 7, 1, 1) == (3, 3)


def test_bf16_cpu_engine_is_close_to_fp32():
    """bf16 convolutions (fp32 accumulation): the shipped network's probabilities within 2e-2
    and its cells (λ2796) the same; a CPU without bf16 kernels says so."""
    if not _core.built_with_onednn:
        pytest.skip("this mgfast was built without oneDNN")
    default = Path(mgfast.__file__).parent / "models" / "default"
    try:
        bf16 = CpuBackend(default, threads=2, precision="bf16")
    except ValueError as e:
        assert "bf16" in str(e) and "AVX512-BF16" in str(e)
        pytest.skip("this CPU has no bf16 kernels")
    sim = mgfast.simulate(300, seed=9, with_absorber_fraction=0.5)
    x = mgfast.preprocess(sim.flux, None, sim.err).flux
    p32, l32 = CpuBackend(default, threads=2).infer(x)
    p16, l16 = bf16.infer(x)
    assert 0 < np.abs(p16 - p32).max() <= 2e-2  # bf16 really ran, and stayed close
    assert np.mean(np.abs(l16 - l32) <= 0.05) >= 0.98
    with pytest.raises(ValueError, match="precision"):
        CpuBackend(default, precision="fp16")


def test_the_engine_boundary_is_typed_layers_and_options():
    """mgfast._core.Layer and EngineOptions: named, typed fields, checked with clear errors."""
    o = _core.EngineOptions(threads=2, batch_size=8, precision="bf16", channels=[0, 1, 2])
    assert (o.device, o.threads, o.batch_size, o.precision, o.channels) == (
        "cpu", 2, 8, "bf16", [0, 1, 2]
    )  # fmt: skip
    with pytest.raises(TypeError):
        _core.EngineOptions("cpu")  # keyword-only
    with pytest.raises(ValueError, match="batch_size"):
        _core.EngineOptions(batch_size=0)
    with pytest.raises(ValueError, match="precision"):
        _core.EngineOptions(precision="int4")
    conv = _core.Layer(kind="conv1d", weight=np.zeros((4, 1, 3), np.float32),
                       bias=np.zeros(4, np.float32), relu=True, stride=2)  # fmt: skip
    assert (conv.kind, conv.c_out, conv.c_in, conv.kernel, conv.stride, conv.relu) == (
        "conv1d", 4, 1, 3, 2, True
    )  # fmt: skip
    with pytest.raises(ValueError, match="unknown kind"):
        _core.Layer(kind="lstm")
    with pytest.raises(ValueError, match=r"\(c_out, c_in, kernel\)"):
        _core.Layer(
            kind="conv1d", weight=np.zeros((4, 3), np.float32), bias=np.zeros(4, np.float32)
        )
    with pytest.raises(ValueError, match="stride"):
        _core.Layer(kind="conv1d", stride=0)
    if _core.built_with_onednn:
        with pytest.raises(ValueError, match="CPU engine runs on 'cpu'"):
            _core.CpuNetwork(
                10, [_core.Layer(kind="flatten")], _core.EngineOptions(device="cuda:0")
            )
        with pytest.raises(ValueError, match="fp32 or bf16"):
            _core.CpuNetwork(
                10, [_core.Layer(kind="flatten")], _core.EngineOptions(precision="fp16")
            )
