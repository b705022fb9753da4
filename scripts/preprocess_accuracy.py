"""Accuracy of continuum normalisation on synthetic quasars, as Markdown for docs/RESULTS.md.

    python scripts/preprocess_accuracy.py [--n 40] [--seed 11]

For each SNR and quasar redshift: the systematic continuum error (median over noise
realisations, worst pixel away from emission-line cores and the absorber), a single spectrum's
error (95th percentile and maximum over those pixels), and the equivalent width of an
EW2796 = 0.3 Å doublet after fitting the continuum, relative to the same spectrum divided by the
true continuum (mean and worst of n realisations).
"""

from __future__ import annotations

import argparse
import subprocess
from datetime import date

import numpy as np

import mgfast
from mgfast import grid
from mgfast.atomic import MGII_2796, MGII_2803
from mgfast.testing import away_from_line_cores, synthetic_quasar


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--n", type=int, default=40)
    p.add_argument("--seed", type=int, default=11)
    args = p.parse_args()
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    print(f"date {date.today()}, commit {commit or 'unknown'}, mgfast {mgfast.__version__}, "
          f"n = {args.n} realisations per row, seed {args.seed}")  # fmt: skip
    print()
    print("| SNR | z_em | bias (worst pixel) | single: 95th pct | single: max | "
          "EW ratio mean | EW ratio worst |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    w, dw = grid.wavelength(), np.diff(grid.edges(), axis=1)[:, 0]
    for snr in (5.0, 10.0, 20.0, 50.0):
        for z_em in (0.9, 1.25, 2.0):
            q = synthetic_quasar(args.n, z_em=z_em, z_abs=0.95, ew2796_rest=0.3, snr=snr,
                                 seed=args.seed)  # fmt: skip
            fit = mgfast.preprocess(q.flux, q.wave, q.err, resolution=q.resolution,
                                    normalised=False, return_continuum=True)  # fmt: skip
            truth = mgfast.preprocess(q.continuum.astype(np.float32), q.wave).flux
            ref = mgfast.preprocess(q.flux / q.continuum, q.wave, q.err / q.continuum)
            rel = fit.continuum / truth - 1
            away = away_from_line_cores(z_em, q.z_abs)
            bias = np.abs(np.median(rel, axis=0))[away].max()
            single = np.abs(rel[:, away])
            win = np.zeros(w.size, bool)
            for line in (MGII_2796, MGII_2803):
                win |= np.abs(w - line.wavelength * (1 + q.z_abs)) < 0.8
            ratio = ((1 - fit.flux[:, win]) * dw[win]).sum(1) / (
                (1 - ref.flux[:, win]) * dw[win]
            ).sum(1)
            print(f"| {snr:.0f} | {z_em} | {bias:.2%} | {np.percentile(single, 95):.2%} | "
                  f"{single.max():.2%} | {ratio.mean():.3f} | "
                  f"{ratio[np.argmax(np.abs(ratio - 1))]:.3f} |")  # fmt: skip


if __name__ == "__main__":
    main()
