"""The type stubs of the compiled modules are current: python/mgfast/_core.pyi is what
scripts/gen_stubs.sh generates from the built module, and mypy's stubtest finds the stub and the
module consistent (a name missing on either side, a class member, a constant's type)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, check=False
    )


def test_core_stub_is_what_the_built_module_generates():
    pytest.importorskip("pybind11_stubgen")
    r = _run("scripts/stubs.py", "check")
    assert r.returncode == 0, f"regenerate with scripts/gen_stubs.sh:\n{r.stdout}{r.stderr}"


def test_stubtest_finds_the_core_stub_consistent():
    pytest.importorskip("mypy")
    r = _run("-m", "mypy.stubtest", "mgfast._core", "--allowlist", "scripts/stubtest_allowlist.txt")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Success" in r.stdout


def test_stubtest_finds_the_gpu_stub_consistent_where_the_gpu_engine_builds():
    pytest.importorskip("mypy")
    pytest.importorskip("mgfast._gpu", reason="mgfast._gpu needs CUDA and cuDNN at build time")
    r = _run(
        "-m", "mypy.stubtest", "mgfast._gpu", "--allowlist", "scripts/stubtest_allowlist.txt",
        "--allowlist", "scripts/stubtest_allowlist_gpu.txt",
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr


def test_the_package_is_typed():
    # PEP 561: the marker that makes type checkers read the package's annotations and stubs
    assert (ROOT / "python" / "mgfast" / "py.typed").exists()
    assert (ROOT / "python" / "mgfast" / "_gpu.pyi").exists()
