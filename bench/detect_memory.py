"""Peak memory of ``Detector.detect`` on a large array, beyond the input itself (issue 21: at
most input + 500 MB on 20,000 spectra).

    python bench/detect_memory.py [--n 20000] [--model default] [--chunk-sizes 2048,0]

The spectra (simulated, SNR 3-50, on the grid, normalised, with errors) are written to .npy
files first; each configuration then runs in a fresh process that loads them (flux and err,
float32: the input), builds the Detector and warms it up on 8 spectra, resets the kernel's
peak-RSS counter (/proc/self/clear_refs, Linux) and calls ``detect`` once on all of them. It
prints the input's size and the peak RSS above the state before the call. chunk size 0 means
one chunk of everything (the behaviour before ``chunk_size``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np


def _status(key: str) -> int:
    """A /proc/self/status field in bytes (VmRSS, VmHWM)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{key} not in /proc/self/status")


def child(directory: str, model: str, chunk_size: int) -> None:
    import mgfast

    flux = np.load(os.path.join(directory, "flux.npy"))
    err = np.load(os.path.join(directory, "err.npy"))
    det = mgfast.Detector(model=model, chunk_size=chunk_size or len(flux))
    det.detect(flux[:8], err=err[:8])
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # peak RSS := current RSS
    before = _status("VmRSS")
    t0 = time.perf_counter()
    res = det.detect(flux, err=err)
    seconds = time.perf_counter() - t0
    peak = _status("VmHWM")
    print(json.dumps({
        "n": len(flux), "chunk_size": chunk_size, "input_bytes": flux.nbytes + err.nbytes,
        "rss_before": before, "peak_above": peak - before, "seconds": seconds,
        "detected": int(res.detected.sum()),
    }))  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=20000)
    p.add_argument("--model", default="default")
    p.add_argument("--chunk-sizes", default="2048,0")
    p.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        child(a.child[0], a.child[1], int(a.child[2]))
        return
    import mgfast

    with tempfile.TemporaryDirectory() as tmp:
        flux = np.lib.format.open_memmap(
            os.path.join(tmp, "flux.npy"), "w+", np.float32, (a.n, mgfast.grid.N_PIX)
        )
        err = np.lib.format.open_memmap(
            os.path.join(tmp, "err.npy"), "w+", np.float32, (a.n, mgfast.grid.N_PIX)
        )
        for start in range(0, a.n, 2000):
            sim = mgfast.simulate(min(2000, a.n - start), seed=7, start=start)
            flux[start : start + len(sim.flux)] = sim.flux
            err[start : start + len(sim.flux)] = sim.err
        flux.flush()
        err.flush()
        del flux, err
        cpu = platform.processor() or platform.machine()
        try:
            with open("/proc/cpuinfo") as f:
                cpu = next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
        except (OSError, StopIteration):
            pass
        print(f"{a.n} spectra, model {a.model}, {cpu}, {os.cpu_count()} cores")
        print("| chunk size | input (MB) | peak RSS above the input and model (MB) | ratio | s |")
        print("|---|---|---|---|---|")
        for cs in (int(c) for c in a.chunk_sizes.split(",")):
            out = subprocess.run(
                [sys.executable, __file__, "--child", tmp, a.model, str(cs)],
                check=True, capture_output=True, text=True,
            )  # fmt: skip
            r = json.loads(out.stdout.strip().splitlines()[-1])
            mb = 1024**2
            name = "all (one chunk)" if cs == 0 else str(cs)
            print(f"| {name} | {r['input_bytes'] / mb:.0f} | {r['peak_above'] / mb:.0f} | "
                  f"{r['peak_above'] / r['input_bytes']:.2f} | {r['seconds']:.1f} |")  # fmt: skip


if __name__ == "__main__":
    main()
