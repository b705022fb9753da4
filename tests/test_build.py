"""The build: version from one place, CUDA compiled where CI expects it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import tomllib

import mgfast
from mgfast import _core


def test_version_comes_from_pyproject():
    pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
    if not pyproject.exists():
        pytest.skip("not run from a source tree")
    assert mgfast.__version__ == tomllib.loads(pyproject.read_text())["project"]["version"]


@pytest.mark.skipif(
    not os.environ.get("MGFAST_EXPECT_CUDA_BUILD"), reason="MGFAST_EXPECT_CUDA_BUILD not set"
)
def test_cuda_parts_were_compiled():
    assert _core.built_with_cuda
    # the GPU inference engine too (cuDNN and cuBLAS come with the toolkit on these machines):
    # it cannot run here, but it must build and load
    from mgfast.engine import gpu_engine_module

    assert "cuDNN" in gpu_engine_module().library_versions()


def test_device_queries_never_throw():
    n = mgfast.cuda_device_count()
    # a build without CUDA sees no device; one with CUDA sees what the runtime reports
    assert n == (_core.cuda_device_count() if _core.built_with_cuda else 0)
    with pytest.raises(RuntimeError):
        _core.cuda_device_name(n)  # one past the last device
