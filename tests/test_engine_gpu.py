"""The GPU inference engine (mgfast._gpu: cuDNN + cuBLAS) against the CPU engine, on every kind
of network: the paper's (convolutions, pooling, dense layers, heads), mgfast_fcn (affine input,
strided and dilated 'same' convolutions, heatmap head) and mgfast_multi (a map out), with ONNX
Runtime as the oracle (the CPU engine's own oracle, and present where the GPU build has no
oneDNN). Run on a machine with an NVIDIA GPU; elsewhere only the clear errors are checked."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import mgfast
from mgfast import model as mm
from mgfast.engine import GpuBackend, gpu_engine_module

from conftest import engine_spectra

try:
    gpu_engine_module()
    HAVE_ENGINE = True
except RuntimeError:
    HAVE_ENGINE = False
HAVE_GPU = HAVE_ENGINE and mgfast.cuda_device_count() > 0
needs_gpu = pytest.mark.skipif(not HAVE_GPU, reason="needs the GPU engine and a CUDA device")

# The tolerances: fp32 as the CPU against ONNX Runtime; fp16 looser.
TOL = {"fp32": (1e-4, 0.05), "fp16": (1e-3, 0.5)}
MODELS = Path(mgfast.__file__).parent / "models"


def _reference(model_dir: Path, x: np.ndarray):
    """ONNX Runtime's (probability, λ2796), with the Python decoding of heatmaps, or its map."""
    ort = pytest.importorskip("onnxruntime")
    model = mm.load_model(model_dir)
    sess = ort.InferenceSession(str(model.onnx_path), providers=["CPUExecutionProvider"])
    if model.architecture in ("mgfast_multi", "mgfast_dual"):  # the map
        return sess.run([mm.MULTI_OUTPUT], {mm.INPUT_NAME: x})[0]
    if model.architecture == "mgfast_fcn":
        return mm.decode_heatmap(*sess.run(list(mm.FCN_OUTPUTS), {mm.INPUT_NAME: x}))
    p, lam = sess.run(["probability", "lambda2796"], {mm.INPUT_NAME: x})
    return p[:, 0], lam[:, 0]


@pytest.fixture(scope="module")
def paper_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return mm.write_random_model(tmp_path_factory.mktemp("paper"), "bycycle2023", seed=7)


@pytest.mark.parametrize(
    "name", ["bycycle2023", "default", "multi", "tiny", "dual-random", "multi-random"]
)
def test_the_gpu_plan_emulated_on_the_cpu_matches_the_cpu_engine(
    name: str, paper_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    """The GPU engine's plan (padding written by each producer, unpadded convolutions, cuDNN's
    filter order, cuBLAS's GEMM arguments, the flatten, the heads and heatmap decoding) and its
    element arithmetic, run on the CPU in fp32 against the oneDNN engine: checks everything of
    the GPU engine except the libraries' and the device's own behaviour, on any machine. The
    shipped networks bring the strided, dilated, asymmetric 'same' convolutions and the maps."""
    from mgfast import _core
    from mgfast.engine import CpuBackend, _channel_codes, _core_layers

    if not _core.built_with_onednn:
        pytest.skip("the CPU engine (oneDNN) is the reference here")
    if name == "tiny":  # odd and even kernels, pooling after some, a smaller flatten
        spec = (
            mm.ConvSpec(8, 5),
            mm.PoolSpec(3),
            mm.ConvSpec(16, 6),
            mm.ConvSpec(16, 4),
            mm.PoolSpec(4),
            mm.FlattenSpec(),
            mm.DenseSpec(32),
            mm.HeadsSpec(),
        )
        monkeypatch.setitem(mm.ARCHITECTURES, "tiny", spec)
        path = mm.write_random_model(tmp_path / "tiny", "tiny", seed=3)
    elif name.endswith("-random"):  # mgfast_dual (the shipped "multi") and mgfast_multi
        arch = "mgfast_dual" if name == "dual-random" else "mgfast_multi"
        path = mm.write_random_model(tmp_path / name, arch, seed=4)
    else:
        path = paper_dir if name == "bycycle2023" else MODELS / name
    model = mm.load_model(path)
    sim = mgfast.simulate(40, seed=4, with_absorber_fraction=0.5, realism=mgfast.Realism.survey())
    pre = mgfast.preprocess(sim.flux, None, sim.err)
    x = pre.flux
    x[::5] *= np.float32(1.2)
    # models that read the noise (the shipped default) get the ivar and their channel codes
    iv = pre.ivar if model.reads_noise else None
    extra = (pre.ivar, _channel_codes(model)) if model.reads_noise else ()
    got = _core.emulate_gpu_plan(model.n_pix, _core_layers(model.layers), x, *extra)
    cpu = CpuBackend(model, threads=1, fast_conv=False)
    if cpu.has_summary:
        want_p, want_l, want_maps = cpu.infer_dual(x, iv)
        summary, got = got
        assert np.abs(summary[:, 0] - want_p).max() <= 1e-4
        assert np.mean(np.abs(summary[:, 1] - want_l) <= 0.05) >= 0.97
        np.testing.assert_allclose(got, want_maps.reshape(len(x), -1), atol=2e-4)
    elif cpu.map_output:
        want = cpu.infer_map(x, iv).reshape(len(x), -1)
        np.testing.assert_allclose(got, want, atol=2e-4)
    else:
        want_p, want_l = cpu.infer(x, iv)
        assert np.abs(got[:, 0] - want_p).max() <= 1e-4
        assert np.mean(np.abs(got[:, 1] - want_l) <= 0.05) >= 0.97


def test_without_a_gpu_the_errors_say_why():
    if HAVE_GPU:
        pytest.skip("a GPU is present")
    with pytest.raises(RuntimeError, match=r"GPU inference engine|CUDA device"):
        GpuBackend(MODELS / "default")
    with pytest.raises(RuntimeError, match=r"GPU inference engine|CUDA device"):
        mgfast.Detector(backend="cuda")


def test_bad_gpu_options():
    with pytest.raises(ValueError, match="device"):
        GpuBackend(MODELS / "default", device="gpu0")
    with pytest.raises(ValueError, match="precision"):
        GpuBackend(MODELS / "default", precision="int8")
    with pytest.raises(ValueError, match="batch_size"):
        GpuBackend(MODELS / "default", batch_size=0)
    with pytest.raises(ValueError, match="backend"):
        mgfast.Detector(backend="cuda:x")
    with pytest.raises(ValueError, match="precision"):
        mgfast.Detector(backend="cpu", precision="fp16")


@needs_gpu
def test_a_device_that_does_not_exist():
    with pytest.raises(RuntimeError, match="does not exist"):
        GpuBackend(MODELS / "default", device=f"cuda:{mgfast.cuda_device_count()}")


@needs_gpu
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
@pytest.mark.parametrize("graphs", [True, False])
def test_paper_network_matches_the_cpu(paper_dir: Path, precision: str, graphs: bool):
    x = engine_spectra(1000)
    want_p, want_l = _reference(paper_dir, x)
    gpu = GpuBackend(paper_dir, batch_size=256, precision=precision, graphs=graphs)
    p, lam = gpu.infer(x)  # 1000 = 3 full batches and a padded one, through the 3-slot ring
    p_tol, l_tol = TOL[precision]
    assert np.abs(p - want_p).max() <= p_tol
    assert np.abs(lam - want_l).max() <= l_tol
    if graphs:
        assert gpu.graph_status == "graphs", gpu.graph_status


@needs_gpu
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_shipped_fcn_matches_the_cpu(precision: str):
    x = mgfast.preprocess(*_realistic(2000)).flux
    want_p, want_l = _reference(MODELS / "default", x)
    p, lam = GpuBackend(MODELS / "default", batch_size=512, precision=precision).infer(x)
    p_tol, l_tol = TOL[precision]
    assert np.abs(p - want_p).max() <= p_tol
    # λ is the best cell's: where two cells nearly tie, rounding may pick the other one.
    same_cell = np.abs(lam - want_l) <= l_tol
    assert same_cell.mean() >= 0.995
    assert same_cell[want_p > 0.5].mean() >= 0.999


@needs_gpu
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_shipped_multi_maps_match_the_cpu(precision: str):
    x = mgfast.preprocess(*_realistic(1000)).flux
    want = _reference(MODELS / "multi", x)
    got = GpuBackend(MODELS / "multi", batch_size=300, precision=precision).infer_map(x)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=1e-3 if precision == "fp32" else 2e-2)


@needs_gpu
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_dual_network_matches_onnx_runtime(precision: str, tmp_path: Path):
    ort = pytest.importorskip("onnxruntime")
    path = mm.write_random_model(tmp_path / "dual", "mgfast_dual", seed=4)
    x = mgfast.preprocess(*_realistic(700)).flux
    sess = ort.InferenceSession(str(path / "model.onnx"), providers=["CPUExecutionProvider"])
    outs = sess.run([*mm.FCN_OUTPUTS, mm.MULTI_OUTPUT], {mm.INPUT_NAME: x})
    want_p, want_l = mm.decode_heatmap(*outs[:3])
    p, lam, maps = GpuBackend(path, batch_size=256, precision=precision).infer_dual(x)
    p_tol, l_tol = TOL[precision]
    assert np.abs(p - want_p).max() <= p_tol
    assert np.mean(np.abs(lam - want_l) <= l_tol) >= 0.995
    np.testing.assert_allclose(maps, outs[3], atol=1e-3 if precision == "fp32" else 2e-2)


@needs_gpu
def test_detector_on_the_gpu():
    flux, _, err = _realistic(600)
    det = mgfast.Detector(backend="cuda")
    res = det.detect(flux, err=err)
    want_p, _ = _reference(MODELS / "default", mgfast.preprocess(flux, None, err).flux)
    assert np.abs(res.probability - want_p).max() <= 1e-4
    multi = mgfast.Detector(model="multi", backend="cuda", precision="fp16").detect(flux, err=err)
    assert multi.absorbers is not None and len(multi.n_absorbers) == 600


@needs_gpu
def test_device_arrays_in_and_out():
    cupy = pytest.importorskip("cupy")
    x = mgfast.preprocess(*_realistic(700)).flux
    gpu = GpuBackend(MODELS / "default", batch_size=256)
    want_p, want_l = gpu.infer(x)
    out = cupy.empty((len(x), 2), cupy.float32)
    gpu.infer_device(cupy.asarray(x), out)
    got = cupy.asnumpy(out)
    np.testing.assert_array_equal(got[:, 0], want_p)
    np.testing.assert_array_equal(got[:, 1], want_l)
    with pytest.raises(ValueError, match="float32"):
        gpu.infer_device(cupy.asarray(x, cupy.float64), out)
    with pytest.raises(ValueError, match="__cuda_array_interface__"):
        gpu.infer_device(x, out)


@needs_gpu
@pytest.mark.parametrize("model", ["default", "multi"])
def test_detect_on_device_arrays_matches_the_host_path(model: str):
    """Detector.detect on CuPy arrays (preprocessing, SNR and network on the device, no host
    copy of the spectra) against the same Detector on host arrays (preprocessing on the CPU):
    same flags, masked pixels and SNR, probabilities within fp32 noise; a partial last batch,
    bad pixels, a mask and an empty spectrum included."""
    cupy = pytest.importorskip("cupy")
    sim = mgfast.simulate(700, seed=5, realism=mgfast.Realism.survey(), max_absorbers=3)
    flux, err = sim.flux.copy(), sim.err.copy()
    flux[3] = np.nan  # no usable pixel
    mask = np.zeros(flux.shape, np.uint32)
    mask[5, 100:400] = 4
    det = mgfast.Detector(model=model, backend="cuda", batch_size=256)
    host = det.detect(flux, err=err, mask=mask)
    dev = det.detect(cupy.asarray(flux), err=cupy.asarray(err), mask=cupy.asarray(mask))
    np.testing.assert_array_equal(dev.flags, host.flags)
    np.testing.assert_array_equal(dev.masked_fraction, host.masked_fraction)
    np.testing.assert_allclose(dev.snr, host.snr, rtol=1e-6)
    assert np.abs(dev.probability - host.probability).max() <= 1e-4
    ok = np.isfinite(host.wavelength)
    np.testing.assert_array_equal(np.isfinite(dev.wavelength), ok)
    assert np.abs(dev.wavelength[ok] - host.wavelength[ok]).max() <= 0.05
    if host.absorbers is not None:
        assert abs(len(dev.absorbers) - len(host.absorbers)) <= 2
    one = det.detect(cupy.asarray(flux[0]), err=cupy.asarray(err[0]))
    assert one.probability == pytest.approx(host.probability[0], abs=1e-4)
    with pytest.raises(ValueError, match="err: must be a GPU array"):
        det.detect(cupy.asarray(flux), err=err)
    with pytest.raises(ValueError, match="already be on mgfast"):
        det.detect(cupy.asarray(flux), wave=mgfast.grid.wavelength())
    with pytest.raises(ValueError, match="uint32"):
        det.detect(cupy.asarray(flux), mask=cupy.asarray(mask, cupy.uint8))
    with pytest.raises(ValueError, match="GPU backend"):
        mgfast.Detector(method="matched-filter").detect(cupy.asarray(flux))


@needs_gpu
def test_detect_waits_for_the_arrays_own_stream():
    """Arrays written on a non-blocking CuPy stream (their __cuda_array_interface__ names it)
    are read only once that stream's work is done: the results equal the host path's."""
    cupy = pytest.importorskip("cupy")
    sim = mgfast.simulate(300, seed=6, realism=mgfast.Realism.survey())
    det = mgfast.Detector(backend="cuda", batch_size=128)
    host = det.detect(sim.flux, err=sim.err)
    stream = cupy.cuda.Stream(non_blocking=True)
    with stream:
        # long work queued ahead of the flux on that stream (matrices of ones stay ones), so that
        # a reader not waiting for it would find the flux not yet written
        big = cupy.ones((4096, 4096), cupy.float32)
        for _ in range(10):
            big = big @ big / 4096
        flux = cupy.asarray(sim.flux) * (big[0, 0] / big[0, 0])  # exactly the flux
        err = cupy.asarray(sim.err)
        dev = det.detect(flux, err=err)
    assert np.abs(dev.probability - host.probability).max() <= 1e-4


NOISE = ("flux", "whitened", "log_snr")  # issue 16: a model that reads the noise too


@needs_gpu
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
@pytest.mark.parametrize("graphs", [True, False])
def test_noise_channels_match_onnx_runtime(precision: str, graphs: bool, tmp_path: Path):
    """A three-channel mgfast_dual: the input kernel makes the channels from flux and the ivar
    copied in beside it (ring and graphs), the first convolution is cuDNN's."""
    ort = pytest.importorskip("onnxruntime")
    path = mm.write_random_model(tmp_path / "dual", "mgfast_dual", seed=4, channels=NOISE)
    pre = mgfast.preprocess(*_realistic(700))
    sess = ort.InferenceSession(str(path / "model.onnx"), providers=["CPUExecutionProvider"])
    feed = {mm.FEATURES_NAME: mm.input_features(pre.flux, pre.ivar, NOISE)}
    outs = sess.run([*mm.FCN_OUTPUTS, mm.MULTI_OUTPUT], feed)
    want_p, want_l = mm.decode_heatmap(*outs[:3])
    gpu = GpuBackend(path, batch_size=256, precision=precision, graphs=graphs)
    p, lam, maps = gpu.infer_dual(pre.flux, pre.ivar)
    p_tol, l_tol = TOL[precision]
    assert np.abs(p - want_p).max() <= p_tol
    assert np.mean(np.abs(lam - want_l) <= l_tol) >= 0.995
    np.testing.assert_allclose(maps, outs[3], atol=1e-3 if precision == "fp32" else 2e-2)
    if graphs:
        assert gpu.graph_status == "graphs", gpu.graph_status


@needs_gpu
def test_noise_channels_on_device_arrays_match_the_host_path(tmp_path: Path):
    cupy = pytest.importorskip("cupy")
    path = mm.write_random_model(tmp_path / "fcn", "mgfast_fcn", seed=6, channels=NOISE)
    sim = mgfast.simulate(500, seed=5, realism=mgfast.Realism.survey())
    det = mgfast.Detector(model=str(path), backend="cuda", batch_size=128, threshold=0.5)
    host = det.detect(sim.flux, err=sim.err)
    dev = det.detect(cupy.asarray(sim.flux), err=cupy.asarray(sim.err))
    assert np.abs(dev.probability - host.probability).max() <= 1e-4
    with pytest.raises(ValueError, match="errors on the GPU"):
        det.detect(cupy.asarray(sim.flux))
    x = cupy.asarray(mgfast.preprocess(sim.flux, None, sim.err).flux)
    with pytest.raises(ValueError, match="use detect_device"):
        GpuBackend(path).infer_device(x, cupy.empty((len(x), 2), cupy.float32))


@needs_gpu
def test_profile_splits_the_stages():
    x = mgfast.preprocess(*_realistic(512)).flux
    t = GpuBackend(MODELS / "default", batch_size=256).profile(x)
    assert t["batches"] == 2
    assert t["compute"] > 0 and t["host-to-device"] > 0 and t["device-to-host"] > 0


def _realistic(n: int) -> tuple[np.ndarray, None, np.ndarray]:
    sim = mgfast.simulate(n, seed=3, realism=mgfast.Realism.survey())
    return sim.flux, None, sim.err
