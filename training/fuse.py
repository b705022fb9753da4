"""Can the matched filter's evidence lift the network where the filter alone is better (issue 16,
item 5)? A measurement on the training distribution, never on test or held-out sets:

    python training/fuse.py python/mgfast/models/default --n 500

Per spectrum the features are the network's logit(p), the filter support s (the most significant
of the filter's 16 candidates within 3 Å of the network's λ2796, capped at 30), and, for the
second fusion, s × clean and clean, where clean = exp(−max(n₅ − 1, 0) / 2) and n₅ counts the
filter's candidates at significance ≥ 5 (many of them: a contaminated, realistic spectrum). A
logistic regression on each feature set is fitted on n spectra per SNR (seed 4043, idealised and
the sky mode's Realism.sky() with its kinematics, weighted equally); the script prints the
completeness at 1 % false positives per SNR on fresh spectra (seed 4044) for the network, the
filter and both fusions. docs/RESULTS.md ("Generalisation") reports what it found: too little
to ship, so no fused score is in the package.
"""

from __future__ import annotations

import argparse

import numpy as np

import mgfast
from mgfast_train.data import fixed_set
from mgfast_train.metrics import fit_logistic, threshold_at_fpr

SNRS = (3, 5, 10, 20, 30, 40, 50)
WINDOW, S_MAX, TOP_K = 3.0, 30.0, 16


def features(det: mgfast.Detector, sim) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[no-untyped-def]
    """(N, 4): logit p, s/10, s/10 × clean, clean; and the filter's own significance."""
    res = det.detect(sim.flux, err=sim.err)
    pre = mgfast.preprocess(sim.flux, None, sim.err, allow_empty=True)
    r = mgfast.match(pre.flux, pre.ivar, top_k=TOP_K)
    near = np.abs(r.candidate_lambda2796 - res.wavelength[:, None]) <= WINDOW
    s = np.where(near, r.candidate_significance, 0.0).max(axis=1, initial=0.0)
    s = np.minimum(s, S_MAX) / 10.0
    p = np.clip(res.probability.astype(np.float64), 1e-7, 1 - 1e-7)
    n5 = (r.candidate_significance >= 5).sum(axis=1)
    clean = np.exp(-np.maximum(n5 - 1, 0) / 2.0)
    return np.column_stack([np.log(p / (1 - p)), s, s * clean, clean]), r.significance


def completeness_at_fpr(score: np.ndarray, has: np.ndarray, fpr: float = 0.01) -> float:
    return float(np.mean(score[has] >= threshold_at_fpr(score, has, fpr)))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model", help="an mgfast_fcn model directory")
    p.add_argument("--n", type=int, default=500, help="spectra per SNR in each set")
    args = p.parse_args()
    det = mgfast.Detector(model=args.model)
    sets = {}
    for seed in (4043, 4044):
        for name, sky in (("idealised", False), ("realistic (sky)", True)):
            sim = fixed_set(args.n, seed=seed, sky=sky)
            sets[seed, name] = (*features(det, sim), sim.truth.has_absorber)
    fit = [sets[k] for k in sets if k[0] == 4043]
    x = np.vstack([f[0] for f in fit])
    y = np.concatenate([f[2] for f in fit]).astype(np.float64)
    w = np.concatenate([np.full(len(f[2]), 1.0 / len(f[2])) for f in fit])
    fusions = {}
    for label, cols in (("fused (logit p, s)", [0, 1]), ("fused (+ s·clean, clean)", [0, 1, 2, 3])):
        coef, b = fit_logistic(x[:, cols], y, w)
        fusions[label] = (cols, coef, b)
        print(f"{label}: coefficients {np.round(coef, 4).tolist()}, intercept {b:.4f}")
    print(f"\ncompleteness at 1 % false positives, {args.n} fresh spectra per SNR (seed 4044)")
    for name in ("idealised", "realistic (sky)"):
        feats, sig, has = sets[4044, name]
        scores = {"network": feats[:, 0], "matched filter": sig}
        for label, (cols, coef, b) in fusions.items():
            scores[label] = feats[:, cols] @ coef + b
        print(f"\n{name}\n| detector | " + " | ".join(f"SNR {v}" for v in SNRS) + " |")
        print("|---" * (len(SNRS) + 1) + "|")
        snr = np.repeat(SNRS, args.n)
        for label, sc in scores.items():
            row = [completeness_at_fpr(sc[snr == v], has[snr == v]) for v in SNRS]
            print(f"| {label} | " + " | ".join(f"{100 * c:.1f} %" for c in row) + " |")


if __name__ == "__main__":
    main()
