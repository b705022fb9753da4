"""``mgfast bench``: end-to-end detection throughput on one device, split into its stages, with
ONNX Runtime on the same model, threads and input as the baseline.

The input is simulated before the clock starts (realistic, unnormalised spectra on the grid:
quasar continua, the Lyα forest, metals, sky residuals, bad pixels), so the stages timed are
what a survey run does once the spectra are in memory: preprocessing (masking and the continuum
fit), host-to-device transfer (none on the CPU), inference, and decoding into detections. On a
GPU the transfers and the network are also timed each on its own (CUDA events, serialised), and
inference through the engine's ring of pinned buffers (copies overlapping compute) separately.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import _core
from .model import input_features
from .options import PRECISIONS, parse_device, parse_precision
from .preprocess import preprocess
from .simulate import Realism, simulate


@dataclass
class BenchResult:
    device: str
    n: int
    threads: int
    architecture: str
    flops_per_spectrum: float
    seconds: dict[str, float] = field(default_factory=dict)  # per stage, for all n spectra
    onnxruntime_seconds: float | None = None  # inference only, same input and threads
    precision: str = "fp32"
    device_name: str = ""
    # GPU: the network through the ring (copies overlapping compute), and detect() end to end.
    pipelined_seconds: float | None = None
    end_to_end_seconds: float | None = None
    # GPU, with CuPy: detect() on spectra already in device memory (GpuBackend.detect_device)
    device_arrays_seconds: float | None = None
    onnxruntime_provider: str = "CPUExecutionProvider"

    @property
    def total(self) -> float:
        if self.end_to_end_seconds is not None:
            return self.end_to_end_seconds
        return sum(self.seconds.values())

    def rate(self, stage: str | None = None) -> float:
        t = self.total if stage is None else self.seconds[stage]
        return self.n / t if t > 0 else float("inf")

    def report(self) -> str:
        cpu = cpu_name()
        lines = [
            f"mgfast {_core.__version__} bench: {self.n:,} spectra, {self.architecture} "
            f"({self.flops_per_spectrum / 1e6:,.1f} MFLOP per spectrum), device {self.device}, "
            f"{self.threads} threads, {self.precision}",
            f"machine: {cpu}, {os.cpu_count()} CPUs"
            + (f", {self.device_name}" if self.device_name else ""),
            "",
            "| stage | seconds | spectra/s | share |",
            "|---|---|---|---|",
        ]
        for stage, t in self.seconds.items():
            rate = f"{self.rate(stage):,.0f}" if t > 0 else "-"
            lines.append(f"| {stage} | {t:.3f} | {rate} | {100 * t / self.total:.0f} % |")
        lines.append(f"| end to end | {self.total:.3f} | {self.rate():,.0f} | 100 % |")
        gflops = self.flops_per_spectrum * self.rate("inference") / 1e9
        lines.append("")
        lines.append(f"inference: {gflops:,.1f} GFLOP/s")
        if self.pipelined_seconds:
            ring = self.n / self.pipelined_seconds
            lines.append(
                f"inference through the ring (host memory in and out, copies overlapping "
                f"compute): {ring:,.0f} spectra/s, {self.flops_per_spectrum * ring / 1e9:,.1f} "
                "GFLOP/s"
            )
        if self.end_to_end_seconds is not None:
            lines.append("(end to end: detect() timed whole; the stages above are serialised)")
        if self.device_arrays_seconds:
            lines.append(
                "detect() on spectra already on the GPU (CuPy arrays; preprocessing, SNR and "
                f"network on the device): {self.n / self.device_arrays_seconds:,.0f} spectra/s"
            )
        if self.onnxruntime_seconds:
            ort_rate = self.n / self.onnxruntime_seconds
            lines.append(
                f"ONNX Runtime ({self.onnxruntime_provider}), same model, input and threads: "
                f"{ort_rate:,.0f} spectra/s "
                f"(mgfast inference / ONNX Runtime = {self.rate('inference') / ort_rate:.2f}x)"
            )
        return "\n".join(lines)


def cpu_name() -> str:
    """The CPU's model name (from /proc/cpuinfo where there is one)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def best_time(fn: Callable[[], Any], repeat: int, warm_up: bool = False) -> tuple[float, Any]:
    """The fastest of `repeat` calls of fn by the wall clock (after one untimed call when
    warm_up), and the last call's result."""
    if warm_up:
        fn()
    out, t_best = None, float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        t_best = min(t_best, time.perf_counter() - t0)
    return t_best, out


def run(
    *,
    device: str = "cpu",
    n: int = 2048,
    batch: int | None = None,
    threads: int = 0,
    model: str | Path | None = None,
    precision: str = "fp32",
    onnxruntime: bool = True,
    seed: int = 0,
    repeat: int = 2,
) -> BenchResult:
    """Time the stages on n spectra (best of `repeat` runs of each) and, when installed, ONNX
    Runtime's inference on the same preprocessed input."""
    from .detector import Detector
    from .engine import GpuBackend

    dev = parse_device(device)
    on_gpu = dev.is_cuda
    prec = parse_precision(precision, dev)
    if batch is None:
        batch = 1024 if on_gpu else 64
    if n < 1 or batch < 1 or repeat < 1:
        raise ValueError("n, batch and repeat must be positive")
    det = Detector(model=model, backend=device, batch_size=batch, threads=threads, precision=prec)
    assert det.model is not None and det._backend is not None
    backend = det._backend
    realism = Realism.survey()
    realism = Realism(**{**realism.__dict__, "unnormalised": True})
    sim = simulate(n, seed=seed, with_absorber_fraction=0.5, realism=realism)

    def best(fn: Callable[[], Any]) -> tuple[float, Any]:
        return best_time(fn, repeat)

    t_pre, pre = best(
        lambda: preprocess(
            sim.flux, None, sim.err, normalised=False, allow_empty=True, threads=threads
        )
    )
    x = np.ascontiguousarray(pre.flux, np.float32)
    # a model that reads the noise: the engine's feed makes its channels from flux and ivar
    iv = pre.ivar if det.model.reads_noise else None
    infer = backend.infer_map if backend.map_output else backend.infer
    t_inf = best(lambda: infer(x, iv))[0]
    t_all, _ = best(lambda: det.detect(sim.flux, err=sim.err, normalised=False))
    res = BenchResult(
        device=device,
        n=n,
        threads=backend.threads,
        architecture=det.model.architecture,
        flops_per_spectrum=det.model.flops_per_spectrum,
        precision=precision,
    )
    # decoding and the catalogue columns: what detect() spends beyond the two stages
    decode = max(t_all - t_pre - t_inf, 0.0)
    if on_gpu:
        assert isinstance(backend, GpuBackend)
        # Each stage alone (serialised, CUDA events; the best of `repeat` profiles).
        prof = min((backend.profile(x) for _ in range(repeat)), key=lambda t: t["compute"])
        res.device_name = backend.device_name
        res.pipelined_seconds = t_inf
        res.end_to_end_seconds = t_all
        transfers = {"host-to-device": prof["host-to-device"] / 1e3}
        t_net, after = prof["compute"] / 1e3, {"device-to-host": prof["device-to-host"] / 1e3}
        try:
            import cupy
        except ImportError:  # the device-array path is timed where CuPy is installed
            cupy = None
        if cupy is not None:
            with cupy.cuda.Device(backend.device_index):
                d_flux, d_err = cupy.asarray(sim.flux), cupy.asarray(sim.err)

                def on_device() -> None:
                    det.detect(d_flux, err=d_err, normalised=False)
                    cupy.cuda.Device().synchronize()

                res.device_arrays_seconds = best(on_device)[0]
    else:
        transfers, t_net, after = {"host-to-device": 0.0}, t_inf, {}
    res.seconds = {
        "read (in memory)": 0.0,
        "preprocess": t_pre,
        **transfers,
        "inference": t_net,
        **after,
        "decode and flags": decode,
    }
    if onnxruntime:
        try:
            import onnxruntime as ort
        except ImportError:
            ort = None
        if ort is not None:
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = backend.threads if not on_gpu else 0
            opts.inter_op_num_threads = 1
            if on_gpu and "CUDAExecutionProvider" in ort.get_available_providers():
                res.onnxruntime_provider = "CUDAExecutionProvider"
            s = ort.InferenceSession(
                str(det.model.onnx_path), opts, providers=[res.onnxruntime_provider]
            )
            name = s.get_inputs()[0].name
            # the graph's own input: the flux, or the channels input_features makes
            xo = x if iv is None else input_features(x, iv, det.model.input_channels)

            def ort_run() -> None:
                for i in range(0, n, batch):
                    s.run(None, {name: xo[i : i + batch]})

            res.onnxruntime_seconds = best(ort_run)[0]
    return res


__all__ = ["PRECISIONS", "BenchResult", "best_time", "cpu_name", "run"]
