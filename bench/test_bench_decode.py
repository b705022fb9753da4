"""pytest-benchmark suite for what follows the network: ``python -m pytest bench``.

The multi-absorber maps decoded into absorbers (mgfast.absorbers.decode_absorbers) and the
absorbers' EWs measured on the spectra and combined (mgfast.ew.apply), on simulated realistic
sightlines with 0-4 absorbers. Each case records spectra/s in extra_info; speed is reported,
never asserted.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import mgfast
from mgfast import ew
from mgfast.absorbers import decode_absorbers
from mgfast.engine import CpuBackend
from mgfast.model import load_model
from mgfast.stages import split_maps as _split_maps

N = 1024


@pytest.fixture(scope="module")
def multi_outputs() -> tuple:
    sim = mgfast.simulate(N, seed=4, realism=mgfast.Realism.survey(), max_absorbers=4)
    pre = mgfast.preprocess(sim.flux, None, sim.err)
    model = load_model(Path(mgfast.__file__).parent / "models" / "multi")
    maps = CpuBackend(model).infer_dual(pre.flux)[2]
    return pre, model, _split_maps(maps)


def test_decode_throughput(benchmark, multi_outputs):
    _, model, (logits, maps) = multi_outputs
    a = benchmark(decode_absorbers, logits, maps, calibration=model.calibration)
    benchmark.extra_info["spectra_per_s"] = N / benchmark.stats["mean"]
    assert len(a) > N


def test_ew_measurement_throughput(benchmark, multi_outputs):
    pre, model, (logits, maps) = multi_outputs
    a = decode_absorbers(logits, maps, calibration=model.calibration)
    out = benchmark(ew.apply, a, pre.flux, pre.ivar)
    benchmark.extra_info["spectra_per_s"] = N / benchmark.stats["mean"]
    benchmark.extra_info["absorbers_per_s"] = len(a) / benchmark.stats["mean"]
    assert np.mean(out.ew_measured) > 0.5
