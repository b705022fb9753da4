"""Every detector on the held-out mock family (mgfast_train.heldout_mock; GitHub issue 16).

HELD OUT: the family comes from a second generator that shares no code with the project's
simulator. It is never used to train a network, to choose or calibrate a threshold, or to select
a model: this script only measures. The "completeness at 1 % false positives" below sets a
threshold on the negatives of the very set it scores (per SNR bin, or over the whole set): that
is a point of the ROC curve, the comparison at equal false-positive rate that DESIGN.md asks for,
not a threshold anyone uses. Everything else is at each detector's own default threshold
(Detector(...).threshold: the model's model.json, the filter's DEFAULT_THRESHOLD).

    python training/evaluate_heldout.py [--n-per-snr 2000] [--family idealised|realistic|both]
        [--models default,multi,multi-joint] [--model DIR ...] [--no-matched-filter] [--seed S]
        [--ew-range LO HI]
        [--n-two N] [--n-inject N] [--real-data PATH] [--json OUT] [--markdown OUT]

Detectors run through the public API only: mgfast.Detector(model=NAME or DIR, ew="network") and
Detector(method="matched-filter"), .detect(flux, err=err) on the grid (ew="network" skips
measuring each absorber's EWs on the spectrum, which changes no probability or wavelength). A
multi-absorber model is scored by its per-spectrum summary (probability, wavelength), as
training/evaluate.py's package_detector does, and on the two-absorber set by its absorber list
(res.absorbers above the model's absorber_threshold).

Sets, per family (seeds fixed and used nowhere in training/: idealised 90001, realistic 90002):
* single-absorber: n-per-snr spectra at each SNR in {3, 5, 10, 20, 30, 40, 50} (seed [S, k] for
  the k-th SNR), exactly 50 % with one MgII absorber, EW2796 flat in 0.05-5.15 Å (--ew-range);
* two-absorber: n-two sightlines (default n-per-snr) with two MgII systems ≥ 40 Å apart, EW2796
  flat in 0.5-4 Å, SNR 20 (seed [S, 100]).

Reported per detector: completeness at 1 % false positives per SNR and overall (and the same
counting only detections within 5 Å of the truth); accuracy, completeness and the false-positive
rate at the default threshold, per SNR and overall; the localisation MAE (Å) over the detected
true absorbers and the fraction of them more than 5 Å off (a detection without a wavelength counts
as off), against the truth's λ2796 (the optical-depth-weighted mean of the 2796 line) and, as a
second view, against its absorbed-flux-weighted centroid (lambda2796_centroid); the misses at
the default threshold with EW2796 ≥ 1.5 Å and ≥ 3 Å; on the realistic family the completeness
at the default threshold for absorbers inside and outside the Lyman-α forest; on the two-absorber
set, for multi-absorber models, the recall within 5 Å (one to one)
and the spurious absorbers per 100 sightlines, and for every detector how often its summary
points at one of the two.

Injection into real spectra (../shared/data/real_dev.npz, see its README; seed 90005): each clean
arm (no MgII) alone (other arms NaN, err 0), with held-out absorber profiles (noiseless, one
system, convolved to R = 20000 and binned, training/heldout_mock.render_absorbers) multiplied
into the continuum-normalised flux, n-inject of EW2796 flat in 1-5.15 Å and n-inject in 0.3-1 Å
per arm, λ2796 flat over the arm with both lines ≥ 25 Å inside it. The spectrum's own error is
multiplied by the same profile (its noise was). The UVES and MIKE spectra (native SNR 40-440 per
pixel, far above 4MOST's) get Gaussian noise added up to a per-pixel SNR drawn flat in 10-20 for
each injected spectrum (σ_add² = 1/SNR² − err², err updated), as the README suggests; the ESI and
MagE spectra (rebinned only, R 4000-6000, SNR 30-75) are used as they are. Found: detected at
the default threshold with λ2796 within 5 Å. False alarms: detections in the clean arms without
injection, at native SNR and in n-inject noise draws of the UVES and MIKE arms.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import sys
import time

import numpy as np

import mgfast
from mgfast.absorbers import match
from mgfast_train import heldout_mock as hm
from mgfast_train.metrics import threshold_at_fpr
from mgfast_train.provenance import cpu_name, git_commit

SNRS = hm.SNRS
SEEDS = {"idealised": 90001, "realistic": 90002}
INJECT_SEED = 90005
TOL = 5.0  # Å
SHIPPED = ("default", "multi", "multi-joint")
CHUNK = 2000


# ---------------------------------------------------------------------------------------------
# Running the detectors


def run(det: mgfast.Detector, flux: np.ndarray, err: np.ndarray, absorbers: bool = False) -> dict:
    """Score, λ2796 and detected per spectrum (and the absorbers above the absorber threshold,
    spectrum index, λ2796, for multi-absorber models when asked)."""
    score, lam, found = [], [], []
    a_spec, a_lam = [], []
    for i in range(0, len(flux), CHUNK):
        res = det.detect(flux[i : i + CHUNK], err=err[i : i + CHUNK])
        score.append(np.asarray(res.probability, np.float64))
        lam.append(np.asarray(res.wavelength, np.float64))
        found.append(np.asarray(res.detected, bool))
        if absorbers and res.absorbers is not None:
            a = res.absorbers
            sel = a.probability >= det.absorber_threshold
            a_spec.append(a.spectrum[sel] + i)
            a_lam.append(a.lambda2796[sel])
    out = {
        "score": np.concatenate(score),
        "lam": np.concatenate(lam),
        "detected": np.concatenate(found),
    }
    if a_spec:
        out["abs_spectrum"] = np.concatenate(a_spec)
        out["abs_lambda"] = np.concatenate(a_lam)
    return out


def detectors(args: argparse.Namespace) -> list[tuple[str, mgfast.Detector]]:
    out = []
    names = [m for m in args.models.split(",") if m] if args.models else []
    for m in [*names, *args.model]:
        label = m if m in SHIPPED else os.path.basename(os.path.normpath(m))
        out.append((label, mgfast.Detector(model=m, ew="network")))
    if not args.no_matched_filter:
        out.append(("matched filter", mgfast.Detector(method="matched-filter")))
    return out


# ---------------------------------------------------------------------------------------------
# Metrics


def _frac(x: np.ndarray) -> float:
    return float(np.mean(x)) if x.size else float("nan")


def reliability(prob: np.ndarray, has: np.ndarray, bins: int = 10) -> tuple[list, float]:
    """Reliability diagram (per probability bin: mean probability, fraction with an absorber,
    count) and the expected calibration error, Σ n_b/N |mean p − fraction|. The held-out sets
    are 50/50; a network trained at another prior is calibrated to that prior."""
    idx = np.clip((prob * bins).astype(int), 0, bins - 1)
    rows, ece = [], 0.0
    for b in range(bins):
        m = idx == b
        if not m.any():
            continue
        conf, frac = float(prob[m].mean()), float(has[m].mean())
        rows.append({"bin": b, "mean_probability": conf, "fraction_true": frac, "n": int(m.sum())})
        ece += m.sum() / prob.size * abs(conf - frac)
    return rows, float(ece)


def single_metrics(r: dict, truth: dict, threshold: float) -> dict:
    has = truth["has_absorber"]
    snr = truth["snr"]
    lam_true = truth["lambda2796"]
    ew = np.nan_to_num(truth["ew2796"], nan=0.0)
    score, lam, det = r["score"], r["lam"], r["detected"]
    off = np.abs(lam - lam_true)
    near = has & np.isfinite(off) & (off <= TOL)
    rows = {}
    for s in [*SNRS, None]:
        m = np.ones(snr.size, bool) if s is None else snr == s
        if not m.any():
            continue
        thr = threshold_at_fpr(score[m], has[m], 0.01)
        pred = score >= thr
        rows["all" if s is None else f"{s:g}"] = {
            "n": int(m.sum()),
            "threshold_at_1pct": thr,
            "completeness_at_1pct": _frac(pred[m & has]),
            "completeness_at_1pct_within_5A": _frac((pred & near)[m & has]),
            "accuracy": _frac(det[m] == has[m]),
            "completeness": _frac(det[m & has]),
            "fpr": _frac(det[m & ~has]),
        }
    found = det & has
    e = off[found]
    fin = np.isfinite(e)
    ec = np.abs(lam - truth["lambda2796_centroid"])[found]
    out = {
        "threshold": threshold,
        "per_snr": rows,
        "mae": float(e[fin].mean()) if fin.any() else float("nan"),
        "mae_centroid": float(ec[fin].mean()) if fin.any() else float("nan"),
        "off_5A_from_both": _frac(~fin | ((e > TOL) & (ec > TOL))),
        "median_abs_error": float(np.median(e[fin])) if fin.any() else float("nan"),
        "off_5A": _frac(~fin | (e > TOL)),
        "n_detected_true": int(found.sum()),
    }
    if np.all((score >= 0) & (score <= 1)):  # a probability: its reliability (10 bins)
        out["reliability"], out["ece"] = reliability(score, has)
    for lim in (1.5, 3.0):
        m = has & (ew >= lim)
        out[f"missed_ew_ge_{lim:g}"] = {
            "n": int((~det[m]).sum()),
            "of": int(m.sum()),
            "fraction": _frac(~det[m]),
            "missed_or_off_5A": _frac(~(det & near)[m]),
        }
    if "in_forest" in truth and truth["in_forest"].any():
        f = truth["in_forest"]
        out["completeness_in_forest"] = _frac(det[has & f])
        out["completeness_outside_forest"] = _frac(det[has & ~f])
        out["found_within_5A_in_forest"] = _frac((det & near)[has & f])
        out["found_within_5A_outside_forest"] = _frac((det & near)[has & ~f])
        out["n_in_forest"] = int((has & f).sum())
    return out


def two_metrics(r: dict, truth: dict) -> dict:
    lam_true = truth["lambda2796"]  # (n, 2)
    n = lam_true.shape[0]
    d = np.abs(r["lam"][:, None] - lam_true)
    out = {
        "n_sightlines": n,
        "summary_finds_one": _frac(r["detected"] & np.any(np.nan_to_num(d, nan=np.inf) <= TOL, 1)),
    }
    if "abs_spectrum" in r:
        col, found = match(r["abs_spectrum"], r["abs_lambda"], lam_true, TOL)
        out["recall"] = _frac(found)
        out["both_found"] = _frac(found.all(axis=1))
        out["spurious_per_100"] = float((col < 0).sum() / n * 100.0)
        out["absorbers_per_sightline"] = float(col.size / n)
    return out


# ---------------------------------------------------------------------------------------------
# Injection into the real spectra's clean arms


def _arm_ranges(arm: int) -> tuple[float, float]:
    return hm.lambda2796_ranges()[arm]


def injection_cases(data: str, n_inject: int) -> dict:
    """The injected and clean spectra of every clean arm: flux, err, truth per row."""
    d = np.load(data, allow_pickle=False)
    rows_f, rows_e, info = [], [], []
    for ci, (s, a) in enumerate(zip(d["clean_spec"], d["clean_arm"], strict=True)):
        s, a = int(s), int(a)
        inst = str(d["instrument"][s])
        noisy = ("UVES" in inst) or ("MIKE" in inst)
        f0 = d["flux_norm"][s].astype(np.float64)
        e0 = d["err_norm"][s].astype(np.float64)
        keep = np.zeros(hm.N_PIX, bool)
        keep[hm.ARM_START[a] : hm.ARM_START[a] + hm.ARM_NPIX[a]] = True
        keep &= d["coverage"][s] & np.isfinite(f0) & np.isfinite(e0) & (e0 > 0)
        rng = np.random.default_rng([INJECT_SEED, ci])
        lo, hi = _arm_ranges(a)
        lam = rng.uniform(lo, hi, 2 * n_inject)
        ew = np.r_[rng.uniform(1.0, 5.15, n_inject), rng.uniform(0.3, 1.0, n_inject)]
        trans, _ = hm.render_absorbers(lam, ew, seed=[INJECT_SEED, ci, 1], resolving_power=20000)
        n_clean = n_inject if noisy else 1
        for k in range(2 * n_inject + n_clean):
            t = trans[k] if k < 2 * n_inject else np.ones(hm.N_PIX)
            f, e = f0 * t, e0 * t
            snr_target = float("nan")
            if noisy:
                snr_target = rng.uniform(10.0, 20.0)
                add = np.sqrt(np.clip(snr_target**-2 - e**2, 0.0, None))
                f = f + add * rng.standard_normal(hm.N_PIX)
                e = np.sqrt(e**2 + add**2)
            f = np.where(keep, f, np.nan)
            e = np.where(keep, e, 0.0)
            rows_f.append(f.astype(np.float32))
            rows_e.append(e.astype(np.float32))
            info.append(
                (ci, s, a, lam[k] if k < 2 * n_inject else np.nan,
                 ew[k] if k < 2 * n_inject else 0.0, snr_target)
            )  # fmt: skip
        if noisy:  # the clean arm at native SNR, too
            rows_f.append(np.where(keep, f0, np.nan).astype(np.float32))
            rows_e.append(np.where(keep, e0, 0.0).astype(np.float32))
            info.append((ci, s, a, np.nan, 0.0, np.nan))
    arr = np.array(info, dtype=np.float64)
    return {
        "flux": np.stack(rows_f),
        "err": np.stack(rows_e),
        "case": arr[:, 0].astype(int),
        "spectrum": arr[:, 1].astype(int),
        "arm": arr[:, 2].astype(int),
        "lambda2796": arr[:, 3],
        "ew2796": arr[:, 4],
        "snr_added": arr[:, 5],
        "instrument": [str(d["instrument"][int(x)]) for x in arr[:, 1]],
        "n_cases": len(d["clean_spec"]),
    }


def injection_metrics(r: dict, inj: dict) -> dict:
    lam_true, ew = inj["lambda2796"], inj["ew2796"]
    injected = np.isfinite(lam_true)
    found = r["detected"] & (np.abs(r["lam"] - lam_true) <= TOL)
    clean = ~injected
    native = clean & ~np.isfinite(inj["snr_added"])
    noisy = clean & np.isfinite(inj["snr_added"])
    out = {}
    for key, m in (("ew_ge_1", injected & (ew >= 1.0)), ("ew_0.3_1", injected & (ew < 1.0))):
        out[key] = {"found": int(found[m].sum()), "of": int(m.sum()), "fraction": _frac(found[m])}
        per = {}
        for inst in sorted(set(inj["instrument"])):
            mi = m & (np.array(inj["instrument"]) == inst)
            if mi.any():
                per[inst] = _frac(found[mi])
        out[key]["by_instrument"] = per
    out["false_alarms_native"] = {"n": int(r["detected"][native].sum()), "of": int(native.sum())}
    out["false_alarms_noise_added"] = {
        "n": int(r["detected"][noisy].sum()),
        "of": int(noisy.sum()),
        "fraction": _frac(r["detected"][noisy]),
    }
    return out


# ---------------------------------------------------------------------------------------------
# Reports


def pct(x: float) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{100 * x:.1f} %"


def markdown(report: dict) -> str:
    meta = report["meta"]
    lines = [
        "### The held-out mock family (training/evaluate_heldout.py)",
        "",
        f"{meta['date']}, commit `{meta['commit']}`, {meta['cpu']} ({meta['cores']} cores), "
        f"{meta['runtime_s']:.0f} s. Command:",
        "",
        f"    {meta['command']}",
        "",
        "Held out: mgfast_train.heldout_mock shares no code with the simulator and is never used "
        "for training or thresholds. Completeness at 1 % FPR: threshold set on the negatives of "
        "the same SNR bin (of the whole set for 'all'), i.e. a ROC point, at equal "
        "false-positive rate. Everything else at each detector's default threshold.",
    ]
    snr_cols = [f"{s:g}" for s in SNRS] + ["all"]
    head = "| detector | " + " | ".join(f"SNR {c}" if c != "all" else "all" for c in snr_cols)
    sep = "|---|" + "---|" * len(snr_cols)
    for fam, fr in report["families"].items():
        lines += [
            "",
            f"#### {fam}: {fr['n_per_snr']} spectra per SNR (50 % with an absorber, EW2796 "
            f"flat {fr['ew_range'][0]:g}-{fr['ew_range'][1]:g} Å), seed {fr['seed']}",
        ]
        for title, key in (
            ("Completeness at 1 % false positives", "completeness_at_1pct"),
            ("... counting only detections within 5 Å", "completeness_at_1pct_within_5A"),
            ("Accuracy at the default threshold", "accuracy"),
            ("False-positive rate at the default threshold", "fpr"),
        ):
            lines += ["", f"{title}:", "", head + " |", sep]
            for name, m in fr["single"].items():
                cells = [pct(m["per_snr"].get(c, {}).get(key, float("nan"))) for c in snr_cols]
                lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines += [
            "",
            "Localisation and misses at the default threshold:",
            "",
            "| detector | threshold | MAE (Å) | median (Å) | > 5 Å off | MAE to the centroid (Å) "
            "| missed, EW ≥ 1.5 Å (missed or > 5 Å off) | missed, EW ≥ 3 Å (missed or > 5 Å off) |"
            + (" found within 5 Å, in / outside the forest |" if fam == "realistic" else ""),
            "|---|---|---|---|---|---|---|---|" + ("---|" if fam == "realistic" else ""),
        ]
        for name, m in fr["single"].items():
            a, b = m["missed_ew_ge_1.5"], m["missed_ew_ge_3"]
            row = (
                f"| {name} | {m['threshold']:.3g} | {m['mae']:.2f} | {m['median_abs_error']:.2f} "
                f"| {pct(m['off_5A'])} | {m['mae_centroid']:.2f} | "
                f"{a['n']} / {a['of']} ({pct(a['fraction'])}; {pct(a['missed_or_off_5A'])}) | "
                f"{b['n']} / {b['of']} ({pct(b['fraction'])}; {pct(b['missed_or_off_5A'])}) |"
            )
            if fam == "realistic":
                row += (
                    f" {pct(m.get('found_within_5A_in_forest', float('nan')))} / "
                    f"{pct(m.get('found_within_5A_outside_forest', float('nan')))} |"
                )
            lines.append(row)
        cal = [(n, m) for n, m in fr["single"].items() if "ece" in m]
        if cal:
            lines += [
                "",
                "Probabilities against the truth (reliability diagram, 10 bins: mean probability "
                "→ fraction with an absorber; the set is 50/50):",
                "",
                "| detector | ECE | reliability |",
                "|---|---|---|",
            ]
            for name, m in cal:
                rel = ", ".join(
                    f"{r['mean_probability']:.2f}→{r['fraction_true']:.2f}"
                    for r in m["reliability"]
                )
                lines.append(f"| {name} | {pct(m['ece'])} | {rel} |")
        if "two" in fr:
            t0 = next(iter(fr["two"].values()))
            lines += [
                "",
                f"Two absorbers per sightline ({t0['n_sightlines']} sightlines, ≥ 40 Å apart, "
                f"EW2796 0.5-4 Å, SNR 20, seed {fr['seed_two']}):",
                "",
                "| detector | recall within 5 Å | both found | spurious per 100 sightlines | "
                "summary at one of the two |",
                "|---|---|---|---|---|",
            ]
            for name, m in fr["two"].items():
                if "recall" in m:
                    lines.append(
                        f"| {name} | {pct(m['recall'])} | {pct(m['both_found'])} | "
                        f"{m['spurious_per_100']:.1f} | {pct(m['summary_finds_one'])} |"
                    )
                else:
                    lines.append(f"| {name} | - | - | - | {pct(m['summary_finds_one'])} |")
    if "injection" in report:
        inj = report["injection"]
        lines += [
            "",
            f"#### Held-out absorbers injected into the real clean arms ({inj['n_cases']} arms, "
            f"{inj['n_inject']} per arm and EW range; UVES and MIKE with noise to SNR 10-20)",
            "",
            "| detector | found, EW ≥ 1 Å | found, EW 0.3-1 Å | false alarms, native | "
            "false alarms, noise added |",
            "|---|---|---|---|---|",
        ]
        for name, m in inj["results"].items():
            a, b = m["ew_ge_1"], m["ew_0.3_1"]
            fa, fn = m["false_alarms_native"], m["false_alarms_noise_added"]
            lines.append(
                f"| {name} | {a['found']} / {a['of']} ({pct(a['fraction'])}) | "
                f"{b['found']} / {b['of']} ({pct(b['fraction'])}) | {fa['n']} / {fa['of']} | "
                f"{fn['n']} / {fn['of']} |"
            )
    return "\n".join(lines) + "\n"


def print_summary(report: dict) -> None:
    print(markdown(report))


def _jsonable(x):  # type: ignore[no-untyped-def]
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, float) and not np.isfinite(x):
        return None
    return x


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--n-per-snr", type=int, default=2000)
    p.add_argument("--family", choices=("idealised", "realistic", "both"), default="both")
    p.add_argument(
        "--models", default=",".join(SHIPPED), help="shipped models, comma-separated ('' none)"
    )
    p.add_argument("--model", action="append", default=[], help="a model directory (repeatable)")
    p.add_argument("--no-matched-filter", action="store_true")
    p.add_argument(
        "--seed", type=int, default=None,
        help=f"idealised family seed S, realistic S + 1 (default {SEEDS['idealised']}, "
        f"{SEEDS['realistic']})",
    )  # fmt: skip
    p.add_argument(
        "--ew-range", type=float, nargs=2, default=(0.05, 5.15), metavar=("LO", "HI"),
        help="EW2796 range (Å, flat) of the single-absorber sets; wider: e.g. 0.05 6",
    )  # fmt: skip
    p.add_argument("--n-two", type=int, default=None, help="two-absorber sightlines (n-per-snr)")
    p.add_argument("--n-inject", type=int, default=40, help="injections per real arm and EW range")
    p.add_argument(
        "--real-data", default=None,
        help="real_dev.npz (default ../shared/data/real_dev.npz beside the repository; '' skips)",
    )  # fmt: skip
    p.add_argument("--json", default=None)
    p.add_argument("--markdown", default=None)
    args = p.parse_args()
    t_start = time.time()
    dets = detectors(args)
    families = ("idealised", "realistic") if args.family == "both" else (args.family,)
    seeds = dict(SEEDS)
    if args.seed is not None:
        seeds = {"idealised": args.seed, "realistic": args.seed + 1}
    n_two = args.n_per_snr if args.n_two is None else args.n_two
    report: dict = {"families": {}, "timing_s": {}}
    for fam in families:
        t0 = time.time()
        parts = [
            hm.generate(
                args.n_per_snr,
                family=fam,
                seed=[seeds[fam], k],
                snr=s,
                ew_range=tuple(args.ew_range),
            )
            for k, s in enumerate(SNRS)
        ]
        flux = np.concatenate([x["flux"] for x in parts])
        err = np.concatenate([x["err"] for x in parts])
        truth = {k: np.concatenate([x["truth"][k] for x in parts]) for k in parts[0]["truth"]}
        two = (
            hm.generate(n_two, family=fam, seed=[seeds[fam], 100], n_absorbers=2) if n_two else None
        )
        report["timing_s"][f"generate_{fam}"] = time.time() - t0
        print(f"{fam}: {len(flux):,} + {n_two:,} spectra generated in {time.time() - t0:.0f} s")
        fr: dict = {
            "n_per_snr": args.n_per_snr, "seed": seeds[fam], "seed_two": [seeds[fam], 100],
            "ew_range": list(args.ew_range),
        }  # fmt: skip
        fr["single"], fr["two"] = {}, {}
        for name, det in dets:
            t1 = time.time()
            fr["single"][name] = single_metrics(run(det, flux, err), truth, det.threshold)
            if two is not None:
                multi = det.multi_absorber
                fr["two"][name] = two_metrics(
                    run(det, two["flux"], two["err"], multi), two["truth"]
                )
            report["timing_s"][f"detect_{fam}_{name}"] = time.time() - t1
        if not fr["two"]:
            del fr["two"]
        report["families"][fam] = fr
    data = args.real_data
    if data is None:
        here = os.path.dirname(os.path.abspath(__file__))
        data = os.path.normpath(os.path.join(here, "..", "..", "shared", "data", "real_dev.npz"))
    if data and os.path.exists(data):
        t0 = time.time()
        inj = injection_cases(data, args.n_inject)
        report["injection"] = {
            "data": os.path.abspath(data),
            "n_cases": inj["n_cases"],
            "n_inject": args.n_inject,
            "seed": INJECT_SEED,
            "results": {name: injection_metrics(run(det, inj["flux"], inj["err"]), inj)
                        for name, det in dets},
        }  # fmt: skip
        report["timing_s"]["injection"] = time.time() - t0
    elif data:
        print(f"{data}: not found, the injection into real spectra is skipped")
    report["meta"] = {
        "date": datetime.date.today().isoformat(),
        "commit": git_commit(),
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "command": "python " + " ".join(shlex.quote(a) for a in sys.argv),
        "mgfast_version": mgfast.__version__,
        "runtime_s": time.time() - t_start,
        "held_out": "never used for training, thresholds or model selection",
    }
    print_summary(report)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(markdown(report))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(_jsonable(report), f, indent=1)


if __name__ == "__main__":
    main()
