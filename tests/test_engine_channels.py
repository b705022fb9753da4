"""Models that read more than the flux (issue 16): the model format (model.json's input.channels,
the ONNX input "features" (N, C, n_pix)), the CPU engine and the GPU engine's plan (emulated on
the CPU) against ONNX Runtime, the Detector feeding them ivar, and the one-channel models left as
they were."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import mgfast
import mgfast.model as mm
from mgfast import _core, ew
from mgfast.engine import CpuBackend, GpuBackend, _channel_codes, _core_layers

ort = pytest.importorskip("onnxruntime")
needs_onednn = pytest.mark.skipif(not _core.built_with_onednn, reason="built without oneDNN")

ALL = ("flux", "whitened", "log_snr")
PROB_TOL = 1e-4  # as tests/test_engine.py
LAMBDA_TOL = 0.05  # Å
MAP_TOL = 1e-4


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("channels")
    return {
        arch: mm.write_random_model(d / arch, arch, seed=5, channels=ALL)
        for arch in ("mgfast_fcn", "mgfast_multi", "mgfast_dual")
    }


@pytest.fixture(scope="module")
def spectra():
    """Realistic spectra (bad pixels, sky residuals) with their errors, preprocessed."""
    sim = mgfast.simulate(40, seed=12, snr=(3, 10, 40), realism=mgfast.Realism.survey())
    pre = mgfast.preprocess(sim.flux, None, sim.err, allow_empty=True)
    return sim, pre


def _ort(path: Path, flux: np.ndarray, ivar: np.ndarray, channels=ALL) -> dict[str, np.ndarray]:
    s = ort.InferenceSession(str(path / "model.onnx"), providers=["CPUExecutionProvider"])
    name = s.get_inputs()[0].name
    x = flux if channels == mm.FLUX_ONLY else mm.input_features(flux, ivar, channels)
    return dict(zip([o.name for o in s.get_outputs()], s.run(None, {name: x}), strict=True))


def test_model_json_and_onnx_carry_the_channels(models):
    meta = json.loads((models["mgfast_fcn"] / "model.json").read_text())
    assert meta["input"] == {
        "name": "features",
        "channels": list(ALL),
        "normalisation": {"kind": "none"},
    }
    s = ort.InferenceSession(str(models["mgfast_fcn"] / "model.onnx"))
    (inp,) = s.get_inputs()
    assert inp.name == "features" and inp.shape == ["N", 3, mgfast.grid.N_PIX]
    m = mm.load_model(models["mgfast_dual"])
    assert m.input_channels == ALL and m.reads_noise
    assert m.layers[1].c_in == 3  # the first convolution reads the three channels


def test_one_channel_models_are_unchanged(tmp_path):
    """No input.channels in model.json, input "flux" (N, n_pix), and ivar is not read."""
    d = mm.write_random_model(tmp_path / "fcn", "mgfast_fcn", seed=2)
    meta = json.loads((d / "model.json").read_text())
    assert meta["input"] == {"name": "flux", "normalisation": {"kind": "none"}}
    m = mm.load_model(d)
    assert m.input_channels == ("flux",) and not m.reads_noise
    s = ort.InferenceSession(str(d / "model.onnx"))
    assert [(i.name, i.shape) for i in s.get_inputs()] == [("flux", ["N", mgfast.grid.N_PIX])]
    # multi-joint is one-channel (the default and multi read the noise since the widened-sky
    # run; docs/TRAINING.md): the ivar it is given changes nothing
    shipped = mm.load_model(Path(mgfast.__file__).parent / "models" / "multi-joint")
    assert shipped.input_channels == ("flux",)
    if _core.built_with_onednn:
        sim = mgfast.simulate(6, seed=1)
        pre = mgfast.preprocess(sim.flux, None, sim.err)
        e = CpuBackend(shipped, threads=1)
        a, b = e.infer_dual(pre.flux), e.infer_dual(pre.flux, pre.ivar)
        assert all(np.array_equal(u, v) for u, v in zip(a, b, strict=True))


@needs_onednn
def test_cpu_engine_matches_onnx_runtime(models, spectra):
    _, pre = spectra
    e = CpuBackend(models["mgfast_fcn"], threads=2, batch_size=8)
    assert e.input_channels == ALL
    p, lam = e.infer(pre.flux, pre.ivar)
    p_ref, lam_ref = mm.decode_heatmap(*_ort(models["mgfast_fcn"], pre.flux, pre.ivar).values())
    assert np.abs(p - p_ref).max() <= PROB_TOL
    assert np.abs(lam - lam_ref).max() <= LAMBDA_TOL
    # the noise matters to this network: without ivar (no errors known) its output changes
    assert np.abs(e.infer(pre.flux)[0] - p).max() > 1e-3

    maps = CpuBackend(models["mgfast_multi"], threads=2).infer_map(pre.flux, pre.ivar)
    ref = _ort(models["mgfast_multi"], pre.flux, pre.ivar)[mm.MULTI_OUTPUT]
    assert np.abs(maps - ref).max() <= MAP_TOL

    sp, sl, dmaps = CpuBackend(models["mgfast_dual"], threads=2).infer_dual(pre.flux, pre.ivar)
    o = _ort(models["mgfast_dual"], pre.flux, pre.ivar)
    p_ref, lam_ref = mm.decode_heatmap(*(o[k] for k in mm.FCN_OUTPUTS))
    assert np.abs(sp - p_ref).max() <= PROB_TOL and np.abs(sl - lam_ref).max() <= LAMBDA_TOL
    assert np.abs(dmaps - o[mm.MULTI_OUTPUT]).max() <= MAP_TOL


@needs_onednn
def test_results_do_not_depend_on_chunks_or_threads(models, spectra):
    _, pre = spectra
    m = mm.load_model(models["mgfast_multi"])
    one = CpuBackend(m, threads=1, batch_size=40).infer_map(pre.flux, pre.ivar)
    many = CpuBackend(m, threads=2, batch_size=3).infer_map(pre.flux, pre.ivar)
    np.testing.assert_allclose(many, one, atol=1e-6)
    row = CpuBackend(m, threads=1).infer_map(pre.flux[7], pre.ivar[7])
    np.testing.assert_allclose(row[0], one[7], atol=1e-6)


@needs_onednn
@pytest.mark.parametrize("arch", ["mgfast_fcn", "mgfast_multi", "mgfast_dual"])
def test_gpu_plan_emulated_matches_the_cpu_engine(models, spectra, arch):
    """The GPU engine's input step (features in the CUDA kernel's arithmetic) and plan."""
    _, pre = spectra
    m = mm.load_model(models[arch])
    out = _core.emulate_gpu_plan(
        m.n_pix, _core_layers(m.layers), pre.flux, pre.ivar, _channel_codes(m)
    )
    e = CpuBackend(m, threads=2)
    if arch == "mgfast_fcn":
        p, lam = e.infer(pre.flux, pre.ivar)
        assert np.abs(out[:, 0] - p).max() <= PROB_TOL
        assert np.abs(out[:, 1] - lam).max() <= LAMBDA_TOL
    elif arch == "mgfast_multi":
        assert np.abs(out.reshape(-1) - e.infer_map(pre.flux, pre.ivar).reshape(-1)).max() <= 1e-4
    else:
        summary, maps = out
        sp, sl, dmaps = e.infer_dual(pre.flux, pre.ivar)
        assert np.abs(summary[:, 0] - sp).max() <= PROB_TOL
        assert np.abs(summary[:, 1] - sl).max() <= LAMBDA_TOL
        assert np.abs(maps.reshape(-1) - dmaps.reshape(-1)).max() <= 1e-4


@needs_onednn
def test_detector_feeds_ivar_and_the_scatter_estimate_without_errors(models, spectra):
    sim, pre = spectra
    det = mgfast.Detector(model=str(models["mgfast_fcn"]), threshold=0.5)
    e = CpuBackend(models["mgfast_fcn"], threads=0)
    res = det.detect(sim.flux, err=sim.err)
    p, _ = e.infer(pre.flux, pre.ivar)
    np.testing.assert_array_equal(res.probability, np.where(np.isnan(p), 0, p))
    # on the grid without errors: ivar from the scatter of the flux, as for the EW measurement
    flux = pre.flux[:5]
    res = det.detect(flux)
    got = mgfast.preprocess(flux, allow_empty=True)
    iv = ew.scatter_ivar(got.flux, got.ivar, got.pixmask)
    assert (iv > 0).any()
    np.testing.assert_array_equal(res.probability, e.infer(got.flux, iv)[0])


def test_device_path_refuses_what_it_cannot_feed():
    """A model that reads the noise needs err or ivar with GPU arrays (their ivar is made on
    the device; the scatter estimate is host-only), and infer_device has no ivar at all."""
    fake = SimpleNamespace(
        model=SimpleNamespace(reads_noise=True, input_channels=ALL), input_channels=ALL
    )
    with pytest.raises(ValueError, match="give the spectra's errors on the GPU"):
        GpuBackend.detect_device(fake, object())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="use detect_device"):
        GpuBackend.infer_device(fake, object(), object())  # type: ignore[arg-type]


def test_loader_checks_the_channels(models, tmp_path):
    def edit(src: Path, name: str, fn) -> Path:  # type: ignore[no-untyped-def]
        d = tmp_path / name
        shutil.copytree(src, d)
        meta = json.loads((d / "model.json").read_text())
        fn(meta)
        (d / "model.json").write_text(json.dumps(meta))
        return d

    def two(meta: dict) -> None:
        meta["input"]["channels"] = ["flux", "whitened"]

    with pytest.raises(ValueError, match="expected 'features'"):
        mm.load_model(edit(models["mgfast_fcn"], "two", two))

    def none(meta: dict) -> None:
        del meta["input"]["channels"]

    with pytest.raises(ValueError, match="expected 'flux'"):
        mm.load_model(edit(models["mgfast_fcn"], "none", none))

    def wrong_order(meta: dict) -> None:
        meta["input"]["channels"] = ["log_snr", "flux", "whitened"]

    with pytest.raises(ValueError, match="first channel must be 'flux'"):
        mm.load_model(edit(models["mgfast_fcn"], "order", wrong_order))

    paper = mm.write_random_model(tmp_path / "paper", "bycycle2023")

    def paper_noise(meta: dict) -> None:
        meta["input"]["channels"] = list(ALL)

    with pytest.raises(ValueError, match="reads the flux alone"):
        mm.load_model(edit(paper, "paper_noise", paper_noise))
    with pytest.raises(ValueError, match="reads the flux alone"):
        mm.write_random_model(tmp_path / "p2", "bycycle2023", channels=ALL)
