"""Preprocessing throughput per device, as a Markdown table for docs/BENCHMARKS.md.

python bench/preprocess_throughput.py [--n 512] [--repeat 5] [--threads 0]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import time
from datetime import date

import mgfast

from cases import cases


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--n", type=int, default=512)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--threads", type=int, default=0)
    args = p.parse_args()
    devices = ["cpu"] + [f"cuda:{d}" for d in range(mgfast.cuda_device_count())]
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    print(f"date {date.today()}, commit {commit or 'unknown'}, mgfast {mgfast.__version__}")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs")
    print()
    print("| case | what | device | spectra/s |")
    print("|---|---|---|---|")
    for c in cases(args.n):
        for dev in devices:
            mgfast.preprocess(*c.args, device=dev, threads=args.threads, **c.kwargs)  # warm up
            best = float("inf")
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                mgfast.preprocess(*c.args, device=dev, threads=args.threads, **c.kwargs)
                best = min(best, time.perf_counter() - t0)
            print(f"| {c.name} | {c.description} | {dev} | {c.n / best:,.0f} |")


if __name__ == "__main__":
    main()
