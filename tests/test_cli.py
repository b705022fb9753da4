"""The command line: each command's output, and one-line errors with a non-zero exit."""

from __future__ import annotations

import re

import numpy as np
import pytest

import mgfast
from mgfast.cli import main
from mgfast.io_hdf5 import read_simulation


def test_simulate_writes_a_file_that_regenerates(tmp_path, capsys):
    out = tmp_path / "set.h5"
    assert main(["simulate", "300", "-o", str(out), "--seed", "5", "--batch", "128"]) == 0
    assert "wrote 300 spectra" in capsys.readouterr().out
    d = read_simulation(out)
    assert d["flux"].shape == (300, mgfast.grid.N_PIX)
    assert d["config"]["seed"] == 5
    again = mgfast.simulate(300, seed=5)
    np.testing.assert_array_equal(d["flux"], again.flux)
    np.testing.assert_array_equal(d["truth"]["lambda2796"], again.truth.lambda2796)
    np.testing.assert_array_equal(d["truth"]["index"], np.arange(300))
    assert not (tmp_path / "set.h5.partial").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["simulate", "0", "-o", "x.h5"], "N: must be at least 1"),
        (["simulate", "5", "-o", "x.txt"], "HDF5"),
        (["simulate", "5", "-o", "/no/such/dir/x.h5"], "does not exist"),
        (["simulate", "5", "-o", "x.h5", "--snr", "-1"], "snr"),
        (["demo", "--n", "1"], "--n"),
    ],
)
def test_errors_are_one_line_and_exit_2(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and "Traceback" not in err


def test_simulate_refuses_to_overwrite(tmp_path, capsys):
    out = tmp_path / "a.h5"
    out.write_text("keep me")
    assert main(["simulate", "3", "-o", str(out)]) == 2
    assert out.read_text() == "keep me"


def test_demo_and_info_run(capsys):
    assert main(["demo", "--n", "200", "--snr", "20"]) == 0
    text = capsys.readouterr().out
    row = next(line for line in text.splitlines() if "matched filter" in line)
    accuracy = float(row.split()[2].rstrip("%"))
    assert accuracy > 90.0  # SNR 20: the filter finds nearly everything above EW ~0.15 Å
    # the second part: every absorber, with the shipped multi model
    lines = text.splitlines()
    at = next(i for i, line in enumerate(lines) if line.strip().startswith("completeness  purity"))
    completeness, purity = (float(v.rstrip("%")) for v in lines[at + 1].split()[:2])
    assert completeness > 85.0 and purity > 95.0
    assert main(["info"]) == 0
    assert "6315 pixels" in capsys.readouterr().out


def test_bench_times_every_stage_and_the_onnxruntime_baseline(capsys):
    pytest.importorskip("onnxruntime")
    if not mgfast._core.built_with_onednn:
        pytest.skip("this mgfast was built without oneDNN")
    assert main(["bench", "--n", "24", "--batch", "8", "--threads", "1", "--repeat", "1"]) == 0
    out = capsys.readouterr().out
    for stage in ("preprocess", "inference", "decode and flags", "end to end"):
        assert f"| {stage} |" in out
    assert "ONNX Runtime (CPUExecutionProvider), same model, input and threads" in out


def test_bench_without_a_gpu_or_at_another_precision_is_a_clear_error(capsys):
    if mgfast.cuda_device_count() == 0:
        assert main(["bench", "--device", "cuda:0", "--n", "4"]) == 2
        assert re.search("GPU inference engine|CUDA device", capsys.readouterr().err)
    assert main(["bench", "--device", "cuda:x", "--n", "4"]) == 2
    assert "--device: expected 'cpu', 'cuda' or 'cuda:N', got 'cuda:x'" in capsys.readouterr().err
    assert main(["bench", "--precision", "int8", "--n", "4"]) == 2
    assert "precision" in capsys.readouterr().err
    assert main(["bench", "--precision", "fp16", "--n", "4"]) == 2  # fp16: the GPU engine only
    assert "precision" in capsys.readouterr().err
