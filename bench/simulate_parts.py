"""Where a simulated spectrum's time goes, on one thread: the paper's setup, then with parts
switched off (no absorber; no absorber and no noise; an absorber in every spectrum, no noise).
Microseconds per spectrum, best of --repeat runs; the differences give each part's cost.

python bench/simulate_parts.py [--n 4000] [--repeat 3]
"""

from __future__ import annotations

import argparse

import mgfast
from mgfast.bench import best_time
from mgfast.simulate import PAPER_SNR

CASES = {
    "paper (80 % with an absorber, noise)": {"with_absorber_fraction": 0.8},
    "no absorber": {"with_absorber_fraction": 0.0},
    "no absorber, no noise": {"with_absorber_fraction": 0.0, "noise": False},
    "an absorber in every spectrum, no noise": {"with_absorber_fraction": 1.0, "noise": False},
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--n", type=int, default=4000)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    print("| case | µs per spectrum (1 thread) |\n|---|---|")
    for name, kw in CASES.items():
        run = lambda kw=kw: mgfast.simulate(args.n, seed=1, snr=PAPER_SNR, threads=1, **kw)  # noqa: E731
        t, _ = best_time(run, args.repeat, warm_up=True)
        print(f"| {name} | {t / args.n * 1e6:.1f} |")


if __name__ == "__main__":
    main()
