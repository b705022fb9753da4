"""CPU inference throughput of a mgfast_fcn model: mgfast's oneDNN engine (decoding included)
against ONNX Runtime on the same model.onnx (raw heads only), same threads, in one run.

    python bench/engine_fcn.py [--model python/mgfast/models/default] [--n 2048] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import time
from datetime import date

import numpy as np
import onnxruntime as ort

import mgfast
from mgfast.detector import default_model_path
from mgfast.engine import CpuBackend
from mgfast.model import load_model


def best(fn, repeat: int) -> float:  # type: ignore[no-untyped-def]
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model", default=str(default_model_path()))
    p.add_argument("--n", type=int, default=2048)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    model = load_model(args.model)
    x = mgfast.preprocess(mgfast.simulate(args.n, seed=7).flux, allow_empty=True).flux
    engine = CpuBackend(model, threads=args.threads, batch_size=args.batch)
    so = ort.SessionOptions()
    so.intra_op_num_threads = args.threads
    sess = ort.InferenceSession(str(model.onnx_path), so, providers=["CPUExecutionProvider"])
    t_engine = best(lambda: engine.infer(x), args.repeat)
    t_ort = best(lambda: sess.run(None, {"flux": x}), args.repeat)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()  # fmt: skip
    gflop = model.flops_per_spectrum / 1e9
    print(f"date {date.today()}, commit {commit}, {os.cpu_count()} CPUs, {args.threads} threads, "
          f"{model.architecture} ({gflop * 1e3:.1f} MFLOP per spectrum), n = {args.n}")  # fmt: skip
    print("| backend | spectra/s | GFLOP/s | ratio |")
    print("|---|---|---|---|")
    for name, t in (("mgfast oneDNN engine", t_engine), ("ONNX Runtime", t_ort)):
        rate = args.n / t
        print(f"| {name} | {rate:,.0f} | {rate * gflop:.1f} | {t_ort / t:.2f} |")
    assert np.all(np.isfinite(engine.infer(x[:8])[0]))


if __name__ == "__main__":
    main()
