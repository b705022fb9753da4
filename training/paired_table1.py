"""Two mgfast models on the same fixed single-absorber test set (evaluate.py's: n-per-snr spectra
at each SNR, seed 777 idealised or 778 realistic), their difference in accuracy at threshold 0.5
and in completeness at 1 % and 0.1 % false positives, with the paired bootstrap's standard
deviation (spectra resampled with replacement, both models on the same draw): whether one model's
Table 1 is worse than another's beyond the test set's own noise.

    python training/paired_table1.py --base python/mgfast/models/default \\
        --other python/mgfast/models/multi-joint [--n-per-snr 10000] [--boot 200]
"""

from __future__ import annotations

import argparse

import numpy as np

import mgfast
from mgfast_train.data import fixed_set
from mgfast_train.metrics import threshold_at_fpr

METRICS = ("accuracy at 0.5", "completeness at 1 % FPR", "completeness at 0.1 % FPR")


def metrics(p: np.ndarray, has: np.ndarray) -> np.ndarray:
    acc = ((p >= 0.5) == has).mean()
    comp = [(p[has] >= threshold_at_fpr(p, has, f)).mean() for f in (0.01, 0.001)]
    return np.array([acc, *comp])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--base", required=True)
    ap.add_argument("--other", required=True)
    ap.add_argument("--n-per-snr", type=int, default=10000)
    ap.add_argument("--boot", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    print("| test set | metric | other - base (points) | bootstrap σ | in σ |")
    print("|---|---|---|---|---|")
    for realistic in (False, True):
        sim = fixed_set(a.n_per_snr, seed=778 if realistic else 777, realistic=realistic)
        has = sim.truth.has_absorber
        p = [mgfast.Detector(model=m).detect(sim.flux, err=sim.err).probability
             for m in (a.base, a.other)]  # fmt: skip
        diff = metrics(p[1], has) - metrics(p[0], has)
        boots = []
        for _ in range(a.boot):
            i = rng.integers(0, has.size, has.size)
            boots.append(metrics(p[1][i], has[i]) - metrics(p[0][i], has[i]))
        sd = np.std(boots, axis=0)
        for name, d, s in zip(METRICS, diff, sd, strict=True):
            kind = "realistic" if realistic else "idealised"
            print(f"| {kind} | {name} | {100 * d:+.3f} | {100 * s:.3f} | {d / s:+.1f} |")


if __name__ == "__main__":
    main()
