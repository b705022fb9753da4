"""CPU inference throughput: mgfast's oneDNN backend and ONNX Runtime on the same model, same
threads, side by side in one run, with the fraction of the CPU's FP32 peak each reaches.

python bench/engine_cpu.py [--n 256] [--threads 2] [--batch 16] [--ort-batch 64] [--repeat 3]
                           [--model DIR] [--check 10000] [--peak-gflops GFLOPS]

Without --model a random paper network ("bycycle2023") is written to a temporary directory.
ONNX Runtime (intra-op threads) runs both ONNX forms of the network: 1-D convolutions, and 2-D
ones of height 1, which it runs faster; the ratio is taken against the faster. Passes alternate
between the backends and the best of --repeat is kept, so that a busy machine hurts all alike.
--check N also compares the outputs on N simulated spectra (the issue's figure uses 10,000).
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import onnxruntime as ort

import mgfast
from mgfast import model as mm
from mgfast.engine import CpuBackend


def spectra(n: int, seed: int) -> np.ndarray:
    return mgfast.simulate(n, seed=seed).flux


def ort_session(path: Path, threads: int) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def ort_infer(s: ort.InferenceSession, x: np.ndarray, batch: int) -> tuple[np.ndarray, np.ndarray]:
    p, lam = [], []
    for i in range(0, len(x), batch):
        a, b = s.run(["probability", "lambda2796"], {"flux": x[i : i + batch]})
        p.append(a[:, 0])
        lam.append(b[:, 0])
    return np.concatenate(p), np.concatenate(lam)


def check(backend: CpuBackend, s: ort.InferenceSession, n: int, batch: int) -> None:
    dp = dl = 0.0
    for i in range(0, n, 1000):
        x = spectra(min(1000, n - i), seed=100 + i)
        p, lam = backend.infer(x)
        p0, l0 = ort_infer(s, x, batch)
        dp = max(dp, float(np.abs(p - p0).max()))
        dl = max(dl, float(np.abs(lam - l0).max()))
    print(
        f"check on {n} simulated spectra vs ONNX Runtime: max |Δprobability| {dp:.2e} "
        f"(≤ 1e-4), max |Δλ2796| {dl:.4f} Å (≤ 0.05)"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--n", type=int, default=256, help="spectra per timed pass")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=16, help="mgfast's batch_size")
    p.add_argument("--ort-batch", type=int, default=64, help="spectra per ONNX Runtime call")
    p.add_argument("--repeat", type=int, default=3, help="timed passes; the best is reported")
    p.add_argument("--model", type=Path, help="model directory (default: random paper network)")
    p.add_argument("--check", type=int, default=0, help="also compare outputs on N spectra")
    p.add_argument(
        "--peak-gflops",
        type=float,
        help="FP32 peak of the threads used (default: threads × 268.5, one core of the "
        "development machine, Zen 5 with two 512-bit FMA pipes, measured with an FMA loop)",
    )
    args = p.parse_args()
    if args.peak_gflops is None:
        args.peak_gflops = 268.5 * args.threads

    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    print(
        f"date {date.today()}, commit {commit or 'unknown'}, mgfast {mgfast.__version__}, "
        f"oneDNN {mgfast._core.onednn_version()}, onnxruntime {ort.__version__}"
    )
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; "
        f"threads {args.threads}, batch {args.batch} (ONNX Runtime {args.ort_batch}), "
        f"{args.n} spectra per pass, "
        f"best of {args.repeat}"
    )

    with tempfile.TemporaryDirectory() as tmp:
        if args.model is None:
            weights = mm.random_weights("bycycle2023", seed=0)
            d1 = mm.save_model(
                Path(tmp) / "m1d",
                mm.build_onnx("bycycle2023", weights),
                "bycycle2023",
                trained=False,
            )
        else:
            d1 = args.model
        model = mm.load_model(d1)
        # The same weights as 2-D convolutions of height 1, the form ONNX Runtime runs fastest.
        weights_keras = _keras_weights(model)
        d2 = mm.save_model(
            Path(tmp) / "m2d",
            mm.build_onnx(model.architecture, weights_keras, conv2d=True),
            model.architecture,
            trained=model.trained,
        )
        flops, fast_flops = model.flops_per_spectrum, _fast_flops(model)
        print(
            f"model: {model.architecture}, {model.n_parameters:,} parameters, "
            f"{flops / 1e9:.3f} GFLOP per spectrum ({fast_flops / 1e9:.3f} with fast FIR "
            "convolutions)"
        )

        backend = CpuBackend(model, threads=args.threads, batch_size=args.batch)
        direct = CpuBackend(model, threads=args.threads, batch_size=args.batch, fast_conv=False)
        runs = {
            "mgfast oneDNN": lambda x: backend.infer(x),
            "mgfast oneDNN, direct convolutions": lambda x: direct.infer(x),
            "ONNX Runtime, Conv1D": (lambda s: lambda x: ort_infer(s, x, args.ort_batch))(
                ort_session(d1 / "model.onnx", args.threads)
            ),
            "ONNX Runtime, Conv2D H=1": (lambda s: lambda x: ort_infer(s, x, args.ort_batch))(
                ort_session(d2 / "model.onnx", args.threads)
            ),
        }
        x = spectra(args.n, seed=1)
        best = dict.fromkeys(runs, float("inf"))
        for f in runs.values():
            f(x[: args.ort_batch])  # warm up
        for _ in range(args.repeat):  # interleaved, so that a busy machine hurts all alike
            for name, f in runs.items():
                t0 = time.perf_counter()
                f(x)
                best[name] = min(best[name], time.perf_counter() - t0)

        print()
        print("| backend | spectra/s | GFLOP/s executed | fraction of peak |")
        print("|---|---|---|---|")
        for name, t in best.items():
            rate = args.n / t
            gf = rate * (fast_flops if name == "mgfast oneDNN" else flops) / 1e9
            print(f"| {name} | {rate:,.1f} | {gf:,.1f} | {gf / args.peak_gflops:.0%} |")
        ours = args.n / best["mgfast oneDNN"]
        ort_best = max(args.n / t for k, t in best.items() if k.startswith("ONNX"))
        print()
        print(
            f"oneDNN / best ONNX Runtime: {ours / ort_best:.2f}× (goal ≥ 1.1×); "
            f"peak assumed {args.peak_gflops:.0f} GFLOP/s (--peak-gflops)"
        )
        if args.check:
            check(backend, ort_session(d1 / "model.onnx", args.threads), args.check, args.ort_batch)


def _fast_flops(model: mm.Model) -> float:
    """Flops of the fast FIR path: even-kernel convolutions after the first cost 3/4."""
    n, f = model.n_pix, 0.0
    for i, la in enumerate(model.layers):
        if isinstance(la, mm.Conv1d):
            n = n - la.kernel + 1
            scale = 0.75 if i > 0 and la.kernel % 2 == 0 and la.kernel >= 4 else 1.0
            f += scale * 2.0 * n * la.c_out * la.c_in * la.kernel
        elif isinstance(la, mm.AvgPool1d):
            n //= la.kernel
        elif isinstance(la, mm.Dense | mm.Heads):
            f += 2.0 * la.weight.size
    return f


def _keras_weights(model: mm.Model) -> list[tuple[np.ndarray, np.ndarray]]:
    """The loaded layers back in Keras' layouts, as build_onnx takes them."""
    out = []
    for la in model.layers:
        if isinstance(la, mm.Conv1d):
            out.append((np.transpose(la.weight, (2, 1, 0)), la.bias))
        elif isinstance(la, mm.Dense):
            out.append((la.weight.T, la.bias))
        elif isinstance(la, mm.Heads):
            out.append((la.weight[:1].T, la.bias[:1]))
            out.append((la.weight[1:].T, la.bias[1:]))
    return out


if __name__ == "__main__":
    sys.exit(main())
