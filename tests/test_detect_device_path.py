"""Detector.detect's dispatch of GPU arrays, checked without a GPU: a host array posing as a GPU
array (it exposes ``__cuda_array_interface__``) and a backend that keeps GpuBackend.detect_device's
contract by running the CPU stages. What it checks is the Detector's side: which arrays take the
device path, its errors, and that the results it assembles from detect_device's outputs equal the
host path's. The device kernels themselves are tests/test_engine_gpu.py's (on a GPU)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import mgfast
from mgfast.engine import CpuBackend
from mgfast.stages import median_snr as _median_snr


class PosingGpuArray:
    """A host array that says it lives on a GPU (the Detector looks no further)."""

    def __init__(self, a: np.ndarray) -> None:
        self.a = np.ascontiguousarray(a)
        self.__cuda_array_interface__ = {
            "shape": self.a.shape,
            "typestr": self.a.dtype.str,
            "data": (self.a.ctypes.data, False),
            "version": 3,
        }

    @property
    def ndim(self) -> int:
        return self.a.ndim

    @property
    def shape(self) -> tuple[int, ...]:
        return self.a.shape

    def reshape(self, *shape: int) -> PosingGpuArray:
        return PosingGpuArray(self.a.reshape(*shape))


class StagesOnTheHost(CpuBackend):
    """detect_device's contract (GPU arrays in, host results out) kept with the CPU stages."""

    calls = 0

    def detect_device(
        self, flux: Any, err: Any = None, ivar: Any = None, mask: Any = None, *,
        normalised: bool = True,
    ) -> dict[str, np.ndarray]:  # fmt: skip
        type(self).calls += 1
        host = {k: None if v is None else v.a for k, v in
                {"err": err, "ivar": ivar, "mask": mask}.items()}  # fmt: skip
        pre = mgfast.preprocess(flux.a, None, normalised=normalised, allow_empty=True, **host)
        out: dict[str, np.ndarray] = {
            "flags": pre.flags, "n_masked": pre.n_masked, "snr": _median_snr(pre.ivar),
            "pixmask": pre.pixmask,
        }  # fmt: skip
        ivar = pre.ivar if self.model.reads_noise else None  # as the device keeps its own
        if self.has_summary:
            p, lam, out["out"] = self.infer_dual(pre.flux, ivar)
            out["summary"] = np.stack([p, lam], axis=1)
        elif self.map_output:
            out["out"] = self.infer_map(pre.flux, ivar)
        else:
            out["out"] = np.stack(self.infer(pre.flux, ivar), axis=1)
        return out


def _detector(model: str) -> mgfast.Detector:
    det = mgfast.Detector(model=model)
    det._backend = StagesOnTheHost(det.model, threads=1)
    return det


@pytest.mark.parametrize("model", ["default", "multi"])
def test_gpu_arrays_take_the_device_path_with_the_host_paths_results(model: str):
    sim = mgfast.simulate(60, seed=8, realism=mgfast.Realism.survey(), max_absorbers=3)
    flux, err = sim.flux.copy(), sim.err.copy()
    flux[2] = np.nan
    mask = np.zeros(flux.shape, np.uint32)
    mask[4, 50:300] = 2
    det = _detector(model)
    host = det.detect(flux, err=err, mask=mask)
    before = StagesOnTheHost.calls
    dev = det.detect(PosingGpuArray(flux), err=PosingGpuArray(err), mask=PosingGpuArray(mask))
    assert StagesOnTheHost.calls == before + 1
    for name in ("probability", "wavelength", "detected", "flags", "masked_fraction", "snr"):
        np.testing.assert_array_equal(getattr(dev, name), getattr(host, name), err_msg=name)
    assert dev.flags[2] & mgfast.SpectrumFlag.ALL_MASKED and dev.probability[2] == 0
    if model == "multi":
        np.testing.assert_array_equal(dev.n_absorbers, host.n_absorbers)
        np.testing.assert_array_equal(dev.absorbers.lambda2796, host.absorbers.lambda2796)
        # the preprocessed spectra stay on the device: the network's EWs, not measured ones
        assert not dev.absorbers.ew_measured.any() and host.absorbers.ew_measured.any()
        det.ew = "network"
        net = det.detect(flux, err=err, mask=mask)
        np.testing.assert_array_equal(dev.absorbers.ew2796, net.absorbers.ew2796)
        det.ew = "combined"
    e0 = err[0].astype(np.float64)
    ivar0 = np.divide(1.0, e0 * e0, out=np.zeros_like(e0), where=e0 > 0).astype(np.float32)
    one = det.detect(PosingGpuArray(flux[0]), ivar=PosingGpuArray(ivar0))
    assert np.ndim(one.probability) == 0
    assert one.probability == pytest.approx(host.probability[0], abs=1e-5)


def test_gpu_arrays_bad_input_says_what_to_do():
    flux = mgfast.simulate(4, seed=1).flux
    det = _detector("default")
    with pytest.raises(ValueError, match="err: must be a GPU array"):
        det.detect(PosingGpuArray(flux), err=np.ones_like(flux))
    with pytest.raises(ValueError, match="already be on mgfast"):
        det.detect(PosingGpuArray(flux), wave=mgfast.grid.wavelength())
    with pytest.raises(ValueError, match="already be on mgfast"):
        det.detect(PosingGpuArray(flux), resolution=40000.0)
    with pytest.raises(ValueError, match="needs a GPU backend"):
        mgfast.Detector().detect(PosingGpuArray(flux))
    with pytest.raises(ValueError, match="needs a GPU backend"):
        mgfast.Detector(method="matched-filter").detect(PosingGpuArray(flux))
