"""`mgfast detect` over N files, in this process and on a dask LocalCluster: a Markdown table for
docs/BENCHMARKS.md.

python bench/detect_files_throughput.py [--n 1000] [--method network] [--workers 1 2] [--repeat 2]

The files are 4MOST L1 joined spectra (docs/io.md layout) at their native sampling (R = 20000,
2 pixels per resolution element, 3850-6870 Å, 23,164 pixels, not normalised), so each goes
through reading, rebinning, continuum fitting and detection. The dask rows include starting the
cluster (about a second), which is what a user of --dask local:N waits for.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import fitsio
import numpy as np

import mgfast
from mgfast.detect_files import detect_files
from mgfast.testing import synthetic_quasar


def write_files(d: Path, n: int, seed: int) -> list[str]:
    q = synthetic_quasar(n, z_abs=0.95, ew2796_rest=0.5, snr=10, seed=seed)
    paths = []
    for i in range(n):
        data = np.zeros(1, dtype=[("WAVE", "f8", q.wave.size), ("FLUX", "f4", q.wave.size),
                                  ("ERR_FLUX", "f4", q.wave.size)])  # fmt: skip
        data["WAVE"], data["FLUX"], data["ERR_FLUX"] = q.wave, q.flux[i], q.err[i]
        p = d / f"qso{i:06d}.fits"
        with fitsio.FITS(str(p), "rw", clobber=True) as f:
            f.write(None, header=[{"name": "INSTRUME", "value": "4MOST"},
                                  {"name": "OBJECT", "value": f"qso{i}"}])  # fmt: skip
            f.write(data, units=["Angstrom", "", ""], extname="SPECTRUM")
        paths.append(str(p))
    return paths


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--n", type=int, default=1000, help="files (one spectrum each)")
    p.add_argument("--method", default="network", choices=("network", "matched-filter"))
    p.add_argument("--workers", type=int, nargs="+", default=[2], help="dask local:N to time")
    p.add_argument("--repeat", type=int, default=2, help="best of this many runs per row")
    p.add_argument("--files-per-chunk", type=int, default=64)
    args = p.parse_args()
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    print(f"date {date.today()}, commit {commit or 'unknown'}, mgfast {mgfast.__version__}")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs")
    tmp = Path(tempfile.mkdtemp(prefix="mgfast-bench-"))
    try:
        paths = write_files(tmp, args.n, seed=1)
        rows = [("local (this process)", "all", None)]
        rows += [(f"dask local:{w}", f"{w} × 1", f"local:{w}") for w in args.workers]
        det = mgfast.Detector(method=args.method)
        reference = None
        print()
        print("| run | processes × threads | files | spectra/s | seconds | same catalogue |")
        print("|---|---|---|---|---|---|")
        for name, procs, dask in rows:
            best = float("inf")
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                cat = detect_files(det, paths, dask=dask, files_per_chunk=args.files_per_chunk)
                best = min(best, time.perf_counter() - t0)
            same = "reference"
            if reference is None:
                reference = cat
            else:
                same = "yes" if all(
                    np.array_equal(reference.columns[k], cat.columns[k], equal_nan=True)
                    if cat.columns[k].dtype.kind == "f"
                    else np.array_equal(reference.columns[k], cat.columns[k])
                    for k in cat.columns
                ) else "NO"  # fmt: skip
            print(f"| {name} | {procs} | {args.n:,} | {args.n / best:,.0f} | {best:.2f} | {same} |")
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    sys.exit(main())
