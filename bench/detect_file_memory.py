"""Peak memory of `mgfast detect` on one big file (issue 21: at most 1 GB on a single
20,000-spectrum file, and flat in the file's size).

    python bench/detect_file_memory.py [--sizes 5000,20000] [--model default]

Writes a 4MOST L1 file of each size (one spectrum per table row on the grid with float64
wavelengths, float32 flux and errors, as the L1 layout of docs/io.md; simulated SNR 3-50, half
with an absorber), appending rows a block at a time so that the writer never holds the file,
then runs `mgfast detect FILE -o cat.fits --model MODEL` under GNU time and prints its peak RSS,
wall time and the number of rows written.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

from mgfast.testing.survey import write_big_file as write_file


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="5000,20000")
    p.add_argument("--model", default="default")
    a = p.parse_args()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    except (OSError, StopIteration):
        cpu = "unknown CPU"
    print(f"`mgfast detect` on one 4MOST L1 file, model {a.model}, {cpu}, {os.cpu_count()} cores")
    print("| spectra in the file | file size (MB) | peak RSS (MB) | rows | wall time (s) |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for n in (int(s) for s in a.sizes.split(",")):
            path = os.path.join(tmp, f"big{n}.fits")
            write_file(path, n)
            out = os.path.join(tmp, f"cat{n}.fits")
            cmd = ["/usr/bin/time", "-v", sys.executable, "-m", "mgfast", "detect", path,
                   "-o", out, "--model", a.model]  # fmt: skip
            t0 = time.perf_counter()
            r = subprocess.run(cmd, capture_output=True, text=True)
            wall = time.perf_counter() - t0
            if r.returncode != 0:
                raise SystemExit(f"mgfast detect failed ({r.returncode}):\n{r.stderr[-2000:]}")
            peak_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", r.stderr)[1])
            from mgfast.results import Catalog

            rows = len(Catalog.read(out).columns["probability"])
            size = os.path.getsize(path) / 1024**2
            print(f"| {n:,} | {size:,.0f} | {peak_kb / 1024:,.0f} | {rows:,} | {wall:.0f} |")
            os.remove(path)


if __name__ == "__main__":
    main()
