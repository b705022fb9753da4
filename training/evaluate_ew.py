"""The per-spectrum equivalent widths of a detector (the MgII doublet measured on the spectrum at
the detected λ2796, mgfast.ew; Detections.ew2796 ...) on the fixed single-absorber test sets of
training/evaluate.py (seed 777 idealised, 778 realistic).

    python training/evaluate_ew.py [--model default] [--matched-filter] [--n-per-snr 3000]
        [--realistic] [--no-errors]

For the detected spectra that hold an absorber and whose λ2796 lies within 5 Å of it: the median
|relative error| of EW2796 and EW2803 per SNR and per EW2796 bin, the median signed error (bias),
and how often the truth lies within the stated σ. --no-errors gives the spectra without their
errors (the measurement then weighs pixels by each arm's scatter, mgfast.ew.scatter_ivar).
"""

from __future__ import annotations

import argparse
import itertools

import numpy as np

import mgfast
from mgfast_train.data import fixed_set

SNRS = (3, 5, 10, 20, 30, 40, 50)
EW_EDGES = np.array([0.05, 0.2, 0.5, 1.0, 2.0, 3.0, 5.15])


def evaluate(name: str, det: mgfast.Detector, sim, errors: bool = True) -> None:  # type: ignore[no-untyped-def]
    t = sim.truth
    res = det.detect(sim.flux, err=sim.err if errors else None)
    ok = res.detected & t.has_absorber & (np.abs(res.wavelength - t.lambda2796) <= 5.0)
    measured = ok & np.isfinite(res.ew2796)
    rel1 = res.ew2796 / t.ew2796 - 1.0
    rel2 = res.ew2803 / t.ew2803 - 1.0
    within = np.abs(res.ew2796 - t.ew2796) <= res.ew2796_err
    print(f"\n#### {name}\n")
    print(
        f"{int(ok.sum()):,} detected absorbers within 5 Å, {measured.mean() / ok.mean():.1%} "
        f"of them measured; EW2796 median |relative error| {np.median(np.abs(rel1[measured])):.1%}"
        f" (bias {np.median(rel1[measured]):+.1%}, truth within σ {within[measured].mean():.1%}),"
        f" EW2803 {np.nanmedian(np.abs(rel2[measured])):.1%}\n"
    )
    print("| SNR | " + " | ".join(str(s) for s in SNRS) + " |")
    print("|---|" + "---|" * len(SNRS))
    cells = []
    for s in SNRS:
        m = measured & (t.snr == s)
        cells.append(f"{np.median(np.abs(rel1[m])):.1%}" if m.any() else "-")
    print("| EW2796 median error | " + " | ".join(cells) + " |")
    print("\n| EW2796 (Å) | n | median (measured - true)/true | median abs | within σ |")
    print("|---|---|---|---|---|")
    for lo, hi in itertools.pairwise(EW_EDGES):
        m = measured & (t.ew2796 >= lo) & (t.ew2796 < hi)
        if m.any():
            print(
                f"| {lo:g}-{hi:g} | {int(m.sum())} | {np.median(rel1[m]):+.1%} | "
                f"{np.median(np.abs(rel1[m])):.1%} | {within[m].mean():.1%} |"
            )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--model", action="append", default=[], help="shipped name or directory")
    p.add_argument("--matched-filter", action="store_true")
    p.add_argument("--n-per-snr", type=int, default=3000)
    p.add_argument("--realistic", action="store_true")
    p.add_argument("--no-errors", action="store_true", help="the spectra without their errors")
    args = p.parse_args()
    sim = fixed_set(args.n_per_snr, seed=778 if args.realistic else 777, realistic=args.realistic)
    kind = "realistic (Realism.survey())" if args.realistic else "idealised"
    errors = "" if not args.no_errors else ", given without their errors"
    print(f"Test set: {len(sim):,} {kind} spectra, {args.n_per_snr:,} per SNR, 50/50{errors}.")
    for model in args.model or ["default"]:
        det = mgfast.Detector(model=model)
        evaluate(f"{model} (mgfast.Detector)", det, sim, not args.no_errors)
    if args.matched_filter:
        det = mgfast.Detector(method="matched-filter")
        evaluate("matched filter", det, sim, not args.no_errors)


if __name__ == "__main__":
    main()
