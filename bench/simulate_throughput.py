"""Simulator throughput for the paper's setup, as a Markdown table for docs/BENCHMARKS.md:
mgfast.simulate (CPU with all threads and with 1; CUDA when visible) against the plain NumPy/SciPy
implementation of the same physics (mgfast.testing.simulate_numpy), timed in the same run.

python bench/simulate_throughput.py [--n 3000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import time
from datetime import date

import mgfast
from mgfast.bench import cpu_name
from mgfast.simulate import PAPER_SNR
from mgfast.testing.simulate_numpy import simulate_numpy

FRACTION = 0.8  # the paper's training set: 80 % of spectra with an absorber


def cpu_model() -> str:
    return cpu_name()


def best_rates(fns: list, n: int, repeat: int) -> tuple[list[float], list[float]]:
    """Spectra/s of each function's fastest of `repeat` runs, after a small warm-up run, by the
    wall clock and per CPU-second (process time, all threads summed: the measure a loaded, shared
    machine leaves intact). The runs take turns, so that a busy spell slows every row."""
    for fn in fns:
        fn(min(n, 64))
    best = [float("inf")] * len(fns)
    best_cpu = [float("inf")] * len(fns)
    for _ in range(repeat):
        for i, fn in enumerate(fns):
            t0, c0 = time.perf_counter(), time.process_time()
            fn(n)
            best[i] = min(best[i], time.perf_counter() - t0)
            best_cpu[i] = min(best_cpu[i], time.process_time() - c0)
    return [n / b for b in best], [n / b for b in best_cpu]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--n", type=int, default=3000, help="spectra per timed run")
    p.add_argument("--repeat", type=int, default=3, help="timed runs per row; the best counts")
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args()
    n_cpu = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        cwd=os.path.dirname(os.path.abspath(__file__)),
    ).stdout.strip()
    # Others' jobs on a shared machine slow every row; the load average says how busy it was.
    load = os.getloadavg()[0]
    print(f"date {date.today()}, commit {commit or 'unknown'}, mgfast {mgfast.__version__}")
    print(f"machine: {cpu_model()}, {n_cpu} cores, load average {load:.1f} at start")
    print(
        f"setup: the paper's (SNR {{{', '.join(f'{s:g}' for s in PAPER_SNR)}}}, "
        f"{FRACTION:.0%} with one MgII absorber, noise on), {args.n} spectra per run, "
        f"best of {args.repeat}"
    )
    print()

    def cpp(device: str, threads: int):
        def run(n: int) -> None:
            mgfast.simulate(
                n,
                seed=args.seed,
                snr=PAPER_SNR,
                with_absorber_fraction=FRACTION,
                device=device,
                threads=threads,
            )

        return run

    def numpy_ref(n: int) -> None:
        simulate_numpy(n, args.seed, PAPER_SNR, FRACTION)

    t_start = time.perf_counter()
    rows = [
        ("NumPy/SciPy reference", "cpu", "1", numpy_ref),
        ("mgfast.simulate", "cpu", f"all ({n_cpu})", cpp("cpu", 0)),
        ("mgfast.simulate", "cpu", "1", cpp("cpu", 1)),
    ]
    for d in range(mgfast.cuda_device_count()):
        rows.append(("mgfast.simulate", f"cuda:{d}", "-", cpp(f"cuda:{d}", 0)))
    rates, cpu_rates = best_rates([r[3] for r in rows], args.n, args.repeat)
    print(
        "| implementation | device | threads | spectra/s | × NumPy | spectra per CPU-s | × NumPy |"
    )
    print("|---|---|---|---|---|---|---|")
    for (name, dev, threads, _), rate, cpu in zip(rows, rates, cpu_rates, strict=True):
        print(f"| {name} | {dev} | {threads} | {rate:,.0f} | {rate / rates[0]:.2f} | "
              f"{cpu:,.0f} | {cpu / cpu_rates[0]:.2f} |")  # fmt: skip
    print()
    print(
        f"total {time.perf_counter() - t_start:.0f} s, "
        f"load average {os.getloadavg()[0]:.1f} at the end"
    )


if __name__ == "__main__":
    main()
