"""Evaluate detectors on fixed simulated test sets: the paper's Table 1, Youden's J, completeness
at fixed false-positive rates, and Figures 5-9 (docs/figures).

    KERAS_BACKEND=jax python training/evaluate.py --model runs/fcn/final.keras --arch mgfast_fcn \
        [--mgfast-model DIR [--mgfast-precision bf16]] \
        [--matched-filter] [--n-per-snr 10000] [--realistic] [--figures docs/figures] \
        [--json out.json]

The test set: n-per-snr spectra at each SNR in {3, 5, 10, 20, 30, 40, 50}, 50/50 with and
without an absorber, seed 777 (idealised) or 778 (--realistic: Realism.survey()).
"""

from __future__ import annotations

import argparse
import json
import os

os.environ.setdefault("KERAS_BACKEND", "jax")

import itertools

import numpy as np

import mgfast
from mgfast_train.data import fixed_set
from mgfast_train.detectors import (
    Detector,
    keras_detector,
    matched_filter_detector,
    package_detector,
)
from mgfast_train.metrics import (
    EW_BINS,
    completeness_grid,
    table1,
    threshold_at_fpr,
    youden,
)


def evaluate(name: str, det: Detector, sim) -> dict:  # type: ignore[no-untyped-def]
    pre = mgfast.preprocess(sim.flux, None, sim.err, allow_empty=True)  # = model_input(sim)
    score, lam, thr = det(pre.flux, sim.err, pre.ivar)
    t = sim.truth
    has, lam_true = t.has_absorber, t.lambda2796
    ew = np.nan_to_num(t.ew2796, nan=0.0)
    rows = table1(score, lam, has, lam_true, ew, t.snr, thr)
    jt, jtpr, jfpr = youden(score, has)
    at_fpr = {}
    for fpr in (0.01, 0.001):
        thr_f = threshold_at_fpr(score, has, fpr)
        pred = score >= thr_f
        at_fpr[str(fpr)] = {
            "threshold": thr_f,
            "completeness": {
                str(s): float(pred[has & (t.snr == s)].mean()) for s in np.unique(t.snr)
            },
            "completeness_all": float(pred[has].mean()),
        }
    gaps = (score >= thr) & ~np.isfinite(mgfast.grid.pixel_of(lam))
    return {
        "name": name,
        "threshold": thr,
        "table1": rows,
        "youden": {"threshold": jt, "tpr": jtpr, "fpr": jfpr},
        "at_fpr": at_fpr,
        "predicted_in_gaps": float(gaps.mean()),
        "arrays": {"score": score, "lam": lam},
    }


def print_table(res: dict) -> None:
    print(f"\n#### {res['name']} (threshold {res['threshold']:g})\n")
    print(
        "| SNR | accuracy | MAE (Å) | EW threshold (Å) | completeness above | MAE above (Å) | FPR |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in res["table1"]:
        snr = r["snr"] if r["snr"] == "all" else f"{r['snr']:.0f}"
        print(
            f"| {snr} | {r['accuracy']:.2%} | {r['mae']:.2f} | {r['ew_threshold']:.2f} | "
            f"{r['completeness_above']:.2%} | {r['mae_above']:.2f} | {r['fpr']:.2%} |"
        )
    y = res["youden"]
    print(
        f"\nYouden's J: threshold {y['threshold']:.3g}, TPR {y['tpr']:.2%}, FPR {y['fpr']:.2%}. "
        f"Detections in the gaps: {res['predicted_in_gaps']:.2%}.\n"
    )
    print(
        "| completeness at fixed FPR | "
        + " | ".join(f"SNR {float(s):.0f}" for s in res["at_fpr"]["0.01"]["completeness"])
        + " | all |"
    )
    print("|---|" + "---|" * (len(res["at_fpr"]["0.01"]["completeness"]) + 1))
    for fpr, v in res["at_fpr"].items():
        cells = " | ".join(f"{c:.2%}" for c in v["completeness"].values())
        print(f"| FPR {float(fpr):.1%} | {cells} | {v['completeness_all']:.2%} |")


def figures(out: str, results: list[dict], sim, log_csv: str | None) -> None:  # type: ignore[no-untyped-def]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = sim.truth
    has, ew, snr = t.has_absorber, np.nan_to_num(t.ew2796), t.snr
    for res in results:
        tag = res["name"].replace(" ", "_")
        score, lam = res["arrays"]["score"], res["arrays"]["lam"]
        pred = score >= res["threshold"]
        # Fig. 6: predicted vs true λ2796 per arm
        fig, ax = plt.subplots(1, 3, figsize=(13, 4))
        for a, arm in enumerate(mgfast.grid.ARMS):
            m = has & pred & (mgfast.grid.arm_of(t.lambda2796) == a)
            ax[a].plot(t.lambda2796[m], lam[m], ",", alpha=0.5)
            ax[a].plot([arm.lo, arm.hi], [arm.lo, arm.hi], "k-", lw=0.5)
            ax[a].set_xlim(arm.lo, arm.hi)
            ax[a].set_ylim(arm.lo - 50, arm.hi + 50)
            ax[a].set_title(f"{arm.name} arm")
            ax[a].set_xlabel("true λ2796 (Å)")
        ax[0].set_ylabel("predicted λ2796 (Å)")
        fig.suptitle(f"{res['name']}: predicted vs true λ2796 (cf. paper Fig. 6)")
        fig.tight_layout()
        fig.savefig(os.path.join(out, f"fig6_{tag}.png"), dpi=100)
        plt.close(fig)
        # Fig. 7 and 8: completeness and MAE per SNR x EW bin
        comp = completeness_grid(pred, has, ew, snr)
        snrs = sorted(np.unique(snr))
        mae = np.full_like(comp, np.nan)
        for i, s in enumerate(snrs):
            for j in range(len(EW_BINS) - 1):
                m = has & pred & (snr == s) & (ew >= EW_BINS[j]) & (ew < EW_BINS[j + 1])
                if m.any():
                    mae[i, j] = np.abs(lam[m] - t.lambda2796[m]).mean()
        for grid_, name, fmt, num in (
            (comp, "completeness (TPR)", "{:.2f}", 7),
            (mae, "MAE (Å)", "{:.1f}", 8),
        ):
            fig, ax = plt.subplots(figsize=(11, 4.5))
            ax.imshow(grid_, aspect="auto", cmap="viridis")
            ax.set_xticks(
                range(len(EW_BINS) - 1),
                [f"{a}-{b}" for a, b in itertools.pairwise(EW_BINS)],
                rotation=45,
            )
            ax.set_yticks(range(len(snrs)), [f"{s:.0f}" for s in snrs])
            for (i, j), v in np.ndenumerate(grid_):
                if np.isfinite(v):
                    ax.text(j, i, fmt.format(v), ha="center", va="center", fontsize=7, color="w")
            ax.set_xlabel("rest EW2796 (Å)")
            ax.set_ylabel("SNR")
            ax.set_title(f"{res['name']}: {name} per SNR and EW (cf. paper Fig. {num})")
            fig.tight_layout()
            fig.savefig(os.path.join(out, f"fig{num}_{tag}.png"), dpi=100)
            plt.close(fig)
        # Fig. 9: false negatives vs true λ, false positives vs predicted λ
        fig, ax = plt.subplots(1, 2, figsize=(12, 4))
        for thr, ls in ((res["threshold"], "-"), (res["youden"]["threshold"], "--")):
            p = score >= thr
            ax[0].hist(
                t.lambda2796[has & ~p],
                bins=np.arange(3900, 6800, 20),
                histtype="step",
                ls=ls,
                label=f"threshold {thr:.3g}",
            )
            ax[1].hist(
                lam[~has & p],
                bins=np.arange(3900, 6800, 20),
                histtype="step",
                ls=ls,
                label=f"threshold {thr:.3g}",
            )
        ax[0].set_xlabel("true λ2796 of false negatives (Å)")
        ax[1].set_xlabel("predicted λ2796 of false positives (Å)")
        for a in ax:
            a.legend()
        fig.suptitle(f"{res['name']} (cf. paper Fig. 9)")
        fig.tight_layout()
        fig.savefig(os.path.join(out, f"fig9_{tag}.png"), dpi=100)
        plt.close(fig)
    if log_csv:
        # Runs that continue one another (comma-separated): spectra seen accumulate.
        parts, seen = [], 0.0
        for path in log_csv.split(","):
            part = np.atleast_1d(np.genfromtxt(path, delimiter=",", names=True))
            part["spectra_seen"] += seen
            seen = float(part["spectra_seen"][-1])
            parts.append(part)
        log = np.concatenate(parts)
        fig, ax = plt.subplots(1, 3, figsize=(13, 3.8))
        ax[0].plot(log["spectra_seen"], log["loss"])
        ax[0].set_ylabel("training loss")
        ax[1].plot(log["spectra_seen"], log["val_accuracy"])
        ax[1].set_ylabel("validation accuracy")
        ax[2].plot(log["spectra_seen"], log["val_mae"])
        ax[2].set_ylabel("validation MAE (Å)")
        ax[2].set_yscale("log")
        for a in ax:
            a.set_xlabel("spectra seen")
        fig.suptitle("Training history (cf. paper Fig. 5)")
        fig.tight_layout()
        fig.savefig(os.path.join(out, "fig5_training.png"), dpi=100)
        plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--model", action="append", default=[], help="a .keras file (repeatable)")
    p.add_argument("--arch", action="append", default=[], help="its architecture (repeatable)")
    p.add_argument("--name", action="append", default=[], help="its name in the tables")
    p.add_argument(
        "--mgfast-model",
        action="append",
        default=[],
        help="an exported model directory, run through mgfast.Detector (repeatable)",
    )
    p.add_argument(
        "--mgfast-precision",
        action="append",
        default=[],
        help="the CPU engine's precision for the --mgfast-model of the same rank: fp32 "
        "(default) or bf16",
    )
    p.add_argument("--matched-filter", action="store_true")
    p.add_argument("--n-per-snr", type=int, default=10000)
    p.add_argument("--realistic", action="store_true")
    p.add_argument("--figures", default=None)
    p.add_argument(
        "--log", default=None, help="training log.csv for Fig. 5 (comma-separated: runs in order)"
    )
    p.add_argument("--json", default=None)
    args = p.parse_args()
    sim = fixed_set(args.n_per_snr, seed=778 if args.realistic else 777, realistic=args.realistic)
    kind = "realistic (Realism.survey())" if args.realistic else "idealised"
    print(f"Test set: {len(sim):,} {kind} spectra, {args.n_per_snr:,} per SNR, 50/50.")
    results = []
    for i, path in enumerate(args.model):
        arch = args.arch[i]
        name = args.name[i] if i < len(args.name) else arch
        results.append(evaluate(name, keras_detector(path, arch), sim))
    for i, path in enumerate(args.mgfast_model):
        name = os.path.basename(os.path.normpath(path))
        prec = args.mgfast_precision[i] if i < len(args.mgfast_precision) else "fp32"
        label = f"{name} (mgfast.Detector{', ' + prec if prec != 'fp32' else ''})"
        results.append(evaluate(label, package_detector(path, prec), sim))
    if args.matched_filter:
        results.append(evaluate("matched filter", matched_filter_detector(), sim))
    for r in results:
        print_table(r)
    if args.figures:
        figures(args.figures, results, sim, args.log)
    if args.json:
        for r in results:
            r.pop("arrays")
        with open(args.json, "w") as f:
            json.dump(
                {"test_set": kind, "n_per_snr": args.n_per_snr, "results": results}, f, indent=1
            )


if __name__ == "__main__":
    main()
