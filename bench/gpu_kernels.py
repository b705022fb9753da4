"""The CUDA kernels against the CPU driver on the same inputs: agreement and throughput, end to
end (host arrays in, host arrays out, transfers included), as a Markdown table.

    python bench/gpu_kernels.py [--n 20000] [--repeat 3]

Rows: the simulator (idealised and with Realism.survey()), preprocessing (fast path; rebin and
continuum; degrade, rebin and continuum) and the matched filter. "max |CPU - CUDA|" is over all
outputs (flux and error for the simulator, flux for preprocessing, significance for the filter,
and λ2796 where the significance is above the threshold). Needs a CUDA device; prints what it
measured on the CPU otherwise.
"""

from __future__ import annotations

import argparse
import os
import platform
from collections.abc import Callable
from datetime import date

import numpy as np

import mgfast
from mgfast.bench import best_time
from mgfast.matched_filter import DEFAULT_THRESHOLD
from mgfast.simulate import Realism

from cases import cases


def max_diff(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    both = np.isfinite(a) & np.isfinite(b)
    if not np.array_equal(np.isfinite(a), np.isfinite(b)):
        return float("inf")  # a NaN on one side only is a disagreement
    return float(np.abs(a[both] - b[both]).max()) if both.any() else 0.0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--n", type=int, default=20000)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--only", default="", help="rows whose name contains this")
    args = p.parse_args()
    n = args.n
    devices = ["cpu"] + (["cuda:0"] if mgfast.cuda_device_count() else [])
    gpu = mgfast._core.cuda_device_name(0) if len(devices) > 1 else "none"
    commit = os.environ.get("MGFAST_COMMIT", "unknown")
    print(f"date {date.today()}, commit {commit}, mgfast {mgfast.__version__}")
    print(f"CPU {platform.machine()} x {os.cpu_count()} threads; GPU {gpu}; n = {n}")
    print()
    print("| kernel | CPU spectra/s | CUDA spectra/s | CUDA / CPU | max abs CPU - CUDA |")
    print("|---|---|---|---|---|")

    rows: list[tuple[str, Callable[[str], tuple]]] = []
    for name, realism in (("simulate, idealised", None), ("simulate, survey", Realism.survey())):

        def sim(dev: str, realism=realism) -> tuple:  # type: ignore[no-untyped-def]
            s = mgfast.simulate(n, seed=11, realism=realism, device=dev)
            return (s.flux, s.err, s.truth.lambda2796, s.truth.ew2796)

        rows.append((name, sim))
    m = max(1, n // 4)  # the preprocessing inputs are larger than the grid: fewer of them
    for c in cases(m):

        def pre(dev: str, c=c) -> tuple:  # type: ignore[no-untyped-def]
            return (mgfast.preprocess(*c.args, device=dev, **c.kwargs).flux,)

        rows.append((f"preprocess, {c.name} (n = {c.n})", pre))
    s = mgfast.simulate(n, seed=12, with_absorber_fraction=0.5)
    ivar = (1.0 / s.err.astype(np.float64) ** 2).astype(np.float32)

    def mf(dev: str) -> tuple:
        r = mgfast.match(s.flux, ivar, device=dev)
        sig = np.asarray(r.significance)
        return (sig, np.where(sig >= DEFAULT_THRESHOLD, r.lambda2796, 0.0))

    rows.append(("matched filter", mf))

    for name, fn in rows:
        if args.only not in name:
            continue
        count = m if name.startswith("preprocess") else n
        out, rate = {}, {}
        for dev in devices:
            out[dev] = fn(dev)
            rate[dev] = (
                count / best_time(lambda dev=dev, fn=fn: fn(dev), args.repeat, warm_up=True)[0]
            )
        if len(devices) > 1:
            diff = max(max_diff(a, b) for a, b in zip(out["cpu"], out["cuda:0"], strict=True))
            cpu, cu = rate["cpu"], rate["cuda:0"]
            print(f"| {name} | {cpu:,.0f} | {cu:,.0f} | {cu / cpu:.1f}x | {diff:.2e} |")
        else:
            print(f"| {name} | {rate['cpu']:,.0f} | - | - | - |")


if __name__ == "__main__":
    main()
