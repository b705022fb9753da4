"""Preprocessing of realistic unnormalised spectra on the grid (so mostly the continuum fit), at 1
and 2 threads, and how many arms end alternating between two clipping masks.

    python bench/continuum_throughput.py [--n 2048] [--repeat 3]

The spectra are the simulator's with Realism.survey() and unnormalised=True (quasar continua,
forest, metals, sky residuals, bad pixels). An arm alternates when its continuum after max_iter =
15 and 16 iterations differs but 15 and 17 agree (and 16 and 18): the fit then goes back and
forth between two masks for good (docs/preprocessing.md).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import mgfast
from mgfast.preprocess import ContinuumOptions


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--n", type=int, default=2048)
    p.add_argument("--repeat", type=int, default=3)
    a = p.parse_args()
    realism = mgfast.Realism(**{**mgfast.Realism.survey().__dict__, "unnormalised": True})
    sim = mgfast.simulate(a.n, seed=0, with_absorber_fraction=0.5, realism=realism)
    for threads in (1, 2):
        best = np.inf
        for _ in range(a.repeat):
            t = time.perf_counter()
            mgfast.preprocess(
                sim.flux, None, sim.err, normalised=False, allow_empty=True, threads=threads
            )
            best = min(best, time.perf_counter() - t)
        print(f"threads {threads}: {a.n / best:,.0f} spectra/s (best of {a.repeat})")
    cont = {
        k: mgfast.preprocess(
            sim.flux,
            None,
            sim.err,
            normalised=False,
            allow_empty=True,
            return_continuum=True,
            continuum=ContinuumOptions(max_iter=k),
        ).continuum
        for k in (15, 16, 17, 18)
    }
    n_arms = 0
    alternating = 0
    for arm in mgfast.grid.ARMS:
        c = {k: v[:, arm.start : arm.stop] for k, v in cont.items()}

        def same(i: int, j: int, c: dict = c) -> np.ndarray:
            return np.all(c[i] == c[j], axis=1)

        alternating += int(np.sum(~same(15, 16) & same(15, 17) & same(16, 18)))
        n_arms += a.n
    print(f"arms alternating between two masks: {alternating:,} of {n_arms:,}")


if __name__ == "__main__":
    main()
