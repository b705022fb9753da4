"""pytest-benchmark suite for the inference engines: ``python -m pytest bench``.

The shipped networks and the paper's (random weights: the same shapes and cost as trained) on
preprocessed simulated spectra, on the CPU engine and, where there is a GPU and the GPU engine,
at fp32 and fp16. Each case records spectra/s in extra_info; speed is reported, never asserted.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import mgfast
from mgfast import model as mm
from mgfast.engine import CpuBackend, GpuBackend, gpu_engine_module

MODELS = Path(mgfast.__file__).parent / "models"


def _gpu_available() -> bool:
    try:
        gpu_engine_module()
    except RuntimeError:
        return False
    return mgfast.cuda_device_count() > 0


ENGINES = [("cpu", "fp32")] + ([("cuda:0", "fp32"), ("cuda:0", "fp16")] if _gpu_available() else [])


@pytest.fixture(scope="module")
def networks(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    paper = mm.write_random_model(tmp_path_factory.mktemp("paper"), "bycycle2023", seed=7)
    return {
        "bycycle2023": paper,
        "mgfast_fcn": MODELS / "default",
        "mgfast_multi": MODELS / "multi",
    }


@pytest.fixture(scope="module")
def spectra() -> np.ndarray:
    sim = mgfast.simulate(256, seed=2, realism=mgfast.Realism.survey())
    return mgfast.preprocess(sim.flux, None, sim.err).flux


@pytest.mark.parametrize(("device", "precision"), ENGINES, ids=lambda v: str(v))
@pytest.mark.parametrize("name", ["bycycle2023", "mgfast_fcn", "mgfast_multi"])
def test_engine_throughput(benchmark, networks, spectra, name, device, precision):
    if device == "cpu":
        engine = CpuBackend(networks[name])
        n = 64 if name == "bycycle2023" else len(spectra)
    else:
        engine = GpuBackend(networks[name], device=device, precision=precision, batch_size=256)
        n = len(spectra)
    x = spectra[:n]
    run = engine.infer_map if engine.map_output else engine.infer
    benchmark(run, x)
    benchmark.extra_info["spectra_per_s"] = n / benchmark.stats["mean"]
    benchmark.extra_info["gflop_per_s"] = (
        engine.model.flops_per_spectrum * n / benchmark.stats["mean"] / 1e9
    )
