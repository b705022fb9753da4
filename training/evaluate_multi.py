"""Evaluate a multi-absorber model (an exported mgfast model directory, run through the package's
Detector and CPU engine, as users run it) on fixed multi-absorber test sets.

    python training/evaluate_multi.py --model DIR [--n-per-snr 3000] [--figures docs/figures]
        [--json out.json] [--threshold 0.5]

Test sets: n-per-snr spectra at each SNR in {3, 5, 10, 20, 30, 40, 50}, 80 % of them with 1-4
MgII absorbers (0-4 per sightline), seed 779 (idealised) and 780 (Realism.survey(): forest,
metals beside each system, CIV/SiIV/AlIII and single-line interlopers, continuum errors, sky
residuals, bad pixels). A found absorber is real when it lies within 5 Å of a true λ2796 (one to
one). Reports per-absorber completeness and purity against EW and SNR, the redshift error
(median |Δz| and the 68 % interval), the EW error against EW and how often the truth lies within
the stated σ, the expected calibration error with a reliability diagram, and how often
interlopers and the metal lines beside real systems are reported as MgII.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os

import numpy as np

import mgfast
from mgfast.absorbers import expected_calibration_error, match
from mgfast_train.data import fixed_set

EW_EDGES = np.array([0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.15])
SNRS = (3, 5, 10, 20, 30, 40, 50)
TOL = 5.0  # Å
# Rest wavelengths of the lines that can be mistaken for MgII 2796 (the simulator's interlopers
# and metals): per interloper kind (1 CIV, 2 SiIV, 3 AlIII, 4 single line), both lines.
INTERLOPER_LINES = {
    1: (1548.2040, 1550.7810),
    2: (1393.7602, 1402.7729),
    3: (1854.7184, 1862.7910),
    4: (2796.3543,),
}
METAL_LINES = (2600.1725, 2586.6500, 2382.7652, 2374.4612, 2344.2139, 2852.9631)


def evaluate(det: mgfast.Detector, sim, threshold: float) -> dict:  # type: ignore[no-untyped-def]
    t = sim.truth
    res = det.detect(sim.flux, err=sim.err)
    a = res.absorbers
    assert a is not None
    col = match(a.spectrum, a.lambda2796, t.abs_lambda2796, TOL)[0]
    real = col >= 0
    sel = a.probability >= threshold
    # the matching of the selected ones only (a candidate below threshold finds nothing)
    col_s, found_s = match(
        a.spectrum[sel], a.lambda2796[sel], t.abs_lambda2796, TOL
    )  # fmt: skip
    is_abs = np.isfinite(t.abs_lambda2796)
    ew = t.abs_ew2796
    snr_of = np.broadcast_to(t.snr[:, None], ew.shape)
    out: dict = {"n_spectra": len(t.snr), "n_absorbers": int(is_abs.sum())}
    out["completeness"] = float(found_s[is_abs].mean())
    out["purity"] = float((col_s >= 0).mean()) if col_s.size else float("nan")
    out["completeness_snr"] = {str(s): float(found_s[is_abs & (snr_of == s)].mean()) for s in SNRS}
    spec_snr = t.snr[a.spectrum[sel]]
    out["purity_snr"] = {
        str(s): float((col_s[spec_snr == s] >= 0).mean()) if np.any(spec_snr == s) else None
        for s in SNRS
    }
    grid_c = np.full((len(SNRS), len(EW_EDGES) - 1), np.nan)
    for i, s in enumerate(SNRS):
        for j in range(len(EW_EDGES) - 1):
            m = is_abs & (snr_of == s) & (ew >= EW_EDGES[j]) & (ew < EW_EDGES[j + 1])
            if m.any():
                grid_c[i, j] = found_s[m].mean()
    out["completeness_grid"] = grid_c.tolist()
    # purity against the predicted EW2796 and the observed wavelength
    pew = a.ew2796[sel]
    grid_p = np.full((len(SNRS), len(EW_EDGES) - 1), np.nan)
    for i, s in enumerate(SNRS):
        for j in range(len(EW_EDGES) - 1):
            m = (spec_snr == s) & (pew >= EW_EDGES[j]) & (pew < EW_EDGES[j + 1])
            if m.any():
                grid_p[i, j] = (col_s[m] >= 0).mean()
    out["purity_grid"] = grid_p.tolist()
    lam_edges = np.linspace(3900, 6800, 30)
    lam_s = a.lambda2796[sel]
    out["purity_lambda"] = [
        float((col_s[(lam_s >= lo) & (lam_s < hi)] >= 0).mean())
        if np.any((lam_s >= lo) & (lam_s < hi))
        else None
        for lo, hi in itertools.pairwise(lam_edges)
    ]
    # errors of the matched, selected absorbers
    ok = col_s >= 0
    sp = a.spectrum[sel][ok]
    k = col_s[ok]
    dz = a.z[sel][ok] - t.abs_z[sp, k]
    out["dz_median_abs"] = float(np.median(np.abs(dz))) if dz.size else float("nan")
    out["dz_68"] = [float(v) for v in np.percentile(dz, [16, 84])] if dz.size else [np.nan] * 2
    out["z_within_sigma"] = float(np.mean(np.abs(dz) <= a.z_err[sel][ok])) if dz.size else None
    tew1, tew2 = ew[sp, k], t.abs_ew2803[sp, k]
    pew1, pew2 = a.ew2796[sel][ok], a.ew2803[sel][ok]
    rel1 = (pew1 - tew1) / tew1
    out["ew2796_rel_err_median"] = float(np.median(np.abs(rel1))) if rel1.size else None
    out["ew2803_rel_err_median"] = (
        float(np.median(np.abs((pew2 - tew2) / tew2))) if rel1.size else None
    )
    lnerr = np.abs(np.log(pew1 / tew1))
    out["ew2796_within_sigma"] = (
        float(np.mean(lnerr <= a.ew2796_err[sel][ok] / pew1)) if rel1.size else None
    )
    out["ew_err_by_ew"] = []
    for j in range(len(EW_EDGES) - 1):
        m = (tew1 >= EW_EDGES[j]) & (tew1 < EW_EDGES[j + 1])
        out["ew_err_by_ew"].append(
            {
                "ew": [float(EW_EDGES[j]), float(EW_EDGES[j + 1])],
                "n": int(m.sum()),
                "median_rel_err": float(np.median(rel1[m])) if m.any() else None,
                "median_abs_rel_err": float(np.median(np.abs(rel1[m]))) if m.any() else None,
            }
        )
    # calibration: every candidate, its probability against whether it is real
    ece, mean_p, frac, count = expected_calibration_error(a.probability, real)
    out["ece"] = ece
    out["reliability"] = {
        "mean_probability": mean_p.tolist(), "fraction_real": frac.tolist(),
        "count": count.tolist(),
    }  # fmt: skip
    # interlopers and metal lines reported as MgII (false detections within 5 Å of them)
    false_lam = a.lambda2796[sel][~ok]
    false_spec = a.spectrum[sel][~ok]
    by_kind = {}
    for kind, lines in INTERLOPER_LINES.items():
        hits, n = 0, 0
        for s, kk in zip(*np.nonzero(t.interloper_kind == kind), strict=True):
            pos = np.array(lines) * (1 + t.interloper_z[s, kk])
            if not np.any((pos > 3900) & (pos < 6800)):
                continue
            n += 1
            fl = false_lam[false_spec == s]
            hits += bool(np.any(np.abs(fl[:, None] - pos[None, :]) <= TOL))
        by_kind[["CIV", "SiIV", "AlIII", "single line"][kind - 1]] = {
            "n": n, "reported_as_mgii": hits / n if n else None,
        }  # fmt: skip
    out["interlopers"] = by_kind
    metal_hits, metal_n = 0, 0
    for s, kk in zip(*np.nonzero(is_abs), strict=True):
        pos = np.array(METAL_LINES) * (1 + t.abs_z[s, kk])
        inside = (pos > 3926) & (pos < 6790)
        metal_n += int(inside.sum())
        fl = false_lam[false_spec == s]
        metal_hits += int(np.sum(np.any(np.abs(fl[:, None] - pos[inside][None, :]) <= TOL, 0)))
    out["metal_lines"] = {"n": metal_n, "reported_as_mgii": metal_hits / max(metal_n, 1)}
    out["false_per_spectrum"] = float((~ok).sum() / len(t.snr))
    return out


def spikes(det: mgfast.Detector, n_per_snr: int, threshold: float, seed: int = 781) -> dict:
    """Noise spikes: spectra without an absorber, before and after adding 5 single-pixel dips of
    8σ each (cosmic-ray-like, in absorption) at random pixels; false detections per spectrum."""
    sim = fixed_set(n_per_snr, seed=seed, absorber_fraction=0.0)
    rng = np.random.default_rng(seed)
    out = {}
    for label, flux in (("clean", sim.flux), ("5 spikes of 8σ", sim.flux.copy())):
        if label != "clean":
            rows = np.repeat(np.arange(len(flux)), 5)
            cols = rng.integers(0, flux.shape[1], rows.size)
            flux[rows, cols] -= 8.0 * sim.err[rows, cols]
        a = det.detect(flux, err=sim.err).absorbers
        out[label] = float(np.sum(a.probability >= threshold) / len(flux))
    return out


def report(name: str, r: dict) -> None:
    print(f"\n#### {name}: {r['n_spectra']:,} spectra, {r['n_absorbers']:,} absorbers\n")
    print(f"completeness {r['completeness']:.2%}, purity {r['purity']:.2%}, false detections "
          f"per spectrum {r['false_per_spectrum']:.3f}, ECE {r['ece']:.4f}")  # fmt: skip
    dz0, dz1 = r["dz_68"]
    print(f"|Δz| median {r['dz_median_abs']:.2e}, 68 % interval {dz0:.2e} to {dz1:.2e}; "
          f"|Δz| within the stated σ(z): {r['z_within_sigma']:.1%}")  # fmt: skip
    e1, e2, w1 = (r[k] or np.nan for k in ("ew2796_rel_err_median", "ew2803_rel_err_median",
                                            "ew2796_within_sigma"))  # fmt: skip
    print(f"EW2796 median |relative error| {e1:.1%} (within σ: {w1:.1%}), EW2803 {e2:.1%}\n")
    print("| SNR | " + " | ".join(str(s) for s in SNRS) + " |")
    print("|---|" + "---|" * len(SNRS))
    comp = " | ".join(f"{v:.1%}" for v in r["completeness_snr"].values())
    print(f"| completeness | {comp} |")
    pur = " | ".join(f"{v:.1%}" if v is not None else "-" for v in r["purity_snr"].values())
    print(f"| purity | {pur} |")
    print("\nCompleteness by EW2796 (rows SNR, columns EW bins, Å):\n")
    bins = " | ".join(f"{lo:g}-{hi:g}" for lo, hi in itertools.pairwise(EW_EDGES))
    print(f"| SNR | {bins} |")
    print("|---|" + "---|" * (len(EW_EDGES) - 1))
    for s, row in zip(SNRS, r["completeness_grid"], strict=True):
        print(f"| {s} | " + " | ".join(f"{v:.0%}" if v == v else "-" for v in row) + " |")
    print("\nEW2796 error against EW2796 (matched absorbers):\n")
    print("| EW2796 (Å) | n | median (pred - true)/true | median abs |")
    print("|---|---|---|---|")
    for e in r["ew_err_by_ew"]:
        if e["n"]:
            print(f"| {e['ew'][0]:g}-{e['ew'][1]:g} | {e['n']} | {e['median_rel_err']:+.1%} | "
                  f"{e['median_abs_rel_err']:.1%} |")  # fmt: skip
    print("\nInterlopers reported as MgII (a detection within 5 Å of one of their lines):\n")
    print("| line | n in the arms | reported as MgII |")
    print("|---|---|---|")
    for k, v in r["interlopers"].items():
        if v["n"]:
            print(f"| {k} | {v['n']} | {v['reported_as_mgii']:.2%} |")
    m = r["metal_lines"]
    if m["n"]:
        print(f"| FeII/MgI beside MgII | {m['n']} | {m['reported_as_mgii']:.2%} |")


def figures(results: dict, out: str, name: str = "multi_calibration_maps.png") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 3, figsize=(15, 4.2))
    for name, r in results.items():
        rel = r["reliability"]
        m = np.array(rel["count"]) > 0
        ax[0].plot(np.array(rel["mean_probability"])[m], np.array(rel["fraction_real"])[m],
                   "o-", label=f"{name} (ECE {r['ece']:.3f})")  # fmt: skip
    ax[0].plot([0, 1], [0, 1], "k:", lw=1)
    ax[0].set_xlabel("stated probability")
    ax[0].set_ylabel("fraction real")
    ax[0].set_title("reliability")
    ax[0].legend(fontsize=8)
    for k, key in ((1, "completeness_grid"), (2, "purity_grid")):
        r = results["realistic"] if "realistic" in results else next(iter(results.values()))
        g = np.array(r[key], float)
        im = ax[k].imshow(g, origin="lower", vmin=0, vmax=1, aspect="auto", cmap="viridis")
        ax[k].set_yticks(range(len(SNRS)), [str(s) for s in SNRS])
        ax[k].set_xticks(range(len(EW_EDGES) - 1),
                         [f"{lo:g}" for lo in EW_EDGES[:-1]], fontsize=7)  # fmt: skip
        ax[k].set_xlabel("EW2796 bin start (Å)" + (", predicted" if k == 2 else ""))
        ax[k].set_ylabel("SNR")
        ax[k].set_title(f"{key.split('_')[0]} (realistic set)")
        fig.colorbar(im, ax=ax[k])
    fig.tight_layout()
    os.makedirs(out, exist_ok=True)
    fig.savefig(os.path.join(out, name), dpi=110)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--model", required=True, help="an exported mgfast_multi model directory")
    p.add_argument("--n-per-snr", type=int, default=3000)
    p.add_argument("--threshold", type=float, default=0.5)
    p.add_argument("--figures", default=None)
    p.add_argument("--figure-name", default="multi_calibration_maps.png")
    p.add_argument("--json", default=None)
    a = p.parse_args()
    det = mgfast.Detector(model=a.model, threshold=a.threshold)
    results = {}
    for name, seed, realistic in (("idealised", 779, False), ("realistic", 780, True)):
        sim = fixed_set(a.n_per_snr, seed=seed, realistic=realistic, absorber_fraction=0.8,
                        max_absorbers=4)  # fmt: skip
        results[name] = evaluate(det, sim, a.threshold)
        report(name, results[name])
    sp = spikes(det, max(a.n_per_snr // 3, 100), a.threshold)
    results["spikes"] = sp
    print("\nFalse detections per spectrum without an absorber (idealised, all SNR): "
          + ", ".join(f"{k}: {v:.4f}" for k, v in sp.items()))  # fmt: skip
    if a.figures:
        figures({k: v for k, v in results.items() if k != "spikes"}, a.figures, a.figure_name)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
