"""Preprocessing and ``Detector.detect`` throughput on spectra given on their own wavelength grid
with errors, unnormalised, with z_em (bench/native_grid.py), through the public API only: run it
with two installations (say two virtual environments) to compare versions side by side.

    python bench/own_grid_throughput.py [--n 2048] [--threads 2] [--repeat 3]
"""

from __future__ import annotations

import argparse
import platform

from native_grid import native_grid

import mgfast
from mgfast.bench import best_time, cpu_name
from mgfast.preprocess import preprocess


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=2048)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeat", type=int, default=3)
    a = p.parse_args()
    wave, flux, err, z_em = native_grid(a.n, 0)
    det = mgfast.Detector(threads=a.threads)

    def pre() -> object:
        return preprocess(flux, wave, err, normalised=False, allow_empty=True, threads=a.threads)

    def detect() -> object:
        return det.detect(flux, wave, err, normalised=False, z_em=z_em)

    t_pre, _ = best_time(pre, a.repeat, warm_up=True)
    t_det, _ = best_time(detect, a.repeat, warm_up=True)
    print(
        f"mgfast {mgfast.__version__} at {mgfast.__file__}; {cpu_name()} ({platform.machine()}), "
        f"{a.threads} threads, {a.n} spectra: preprocess (own grid) {a.n / t_pre:,.0f}/s; "
        f"Detector.detect end to end {a.n / t_det:,.0f}/s"
    )


if __name__ == "__main__":
    main()
