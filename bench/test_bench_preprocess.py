"""pytest-benchmark suite for preprocessing: ``python -m pytest bench``.

Each case records spectra/s in extra_info; speed is reported, never asserted.
"""

from __future__ import annotations

import pytest

import mgfast

from cases import cases

DEVICES = ["cpu"] + (["cuda:0"] if mgfast.cuda_device_count() > 0 else [])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("case", cases(), ids=lambda c: c.name)
def test_preprocess_throughput(benchmark, case, device):
    result = benchmark(mgfast.preprocess, *case.args, device=device, **case.kwargs)
    benchmark.extra_info["spectra_per_s"] = case.n / benchmark.stats["mean"]
    benchmark.extra_info["description"] = case.description
    assert result.flux.shape == (case.n, mgfast.grid.N_PIX)
