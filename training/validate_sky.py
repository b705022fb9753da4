"""Compare exported single-absorber models on fresh spectra of mgfast's own simulator: the
validation that decides whether a retrained model replaces the shipped one, before anything is
run on the held-out family (training/evaluate_heldout.py), which only reports.

Four sets, each n-per-snr spectra at SNR 3 … 50, half with one MgII system (seeds 4081-4084,
used by nothing else):

- ``idealised``: the paper's setup (paper kinematics, white noise, perfect continuum);
- ``sky``: the sky kinematics with Realism.sky(), continuum-normalised (a smooth 3 % error);
- ``fitted``: the same unnormalised (a quasar continuum with emission lines), normalised by
  mgfast's continuum fit (``normalised=False``), z_em unknown;
- ``fitted+z_em``: the same given z_em (the forest's mean-flux regulation, IN_FOREST flags).

Per model and set: completeness at 1 % false positives (found within 5 Å), per SNR and overall,
the false-positive rate at the model's default threshold, and completeness outside / inside the
Lyα forest at that threshold. The decision rule (docs/TRAINING.md): a candidate replaces the
shipped default when it is at least as complete at 1 % false positives overall on every set
(within 0.5 points) and better on the fitted ones, with default-threshold false positives of at
most 2 % on sky and fitted spectra.

    python training/validate_sky.py --model python/mgfast/models/default --model runs/sky2-model \
        [--n-per-snr 400] [--markdown FILE]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
import time

import numpy as np

import mgfast
from mgfast.simulate import PAPER_SNR, Realism, simulate

SETS = ("idealised", "sky", "fitted", "fitted+z_em")
LYA = 1215.67


def make_set(name: str, n_per_snr: int) -> tuple[dict, mgfast.simulate.Truth]:
    """Detector.detect's arguments for a set, and its truth."""
    seed = 4081 + SETS.index(name)
    n = n_per_snr * len(PAPER_SNR)
    snr = np.repeat(np.asarray(PAPER_SNR, np.float64), n_per_snr)
    if name == "idealised":
        sim = simulate(n, seed=seed, snr=snr, with_absorber_fraction=0.5)
        return {"flux": sim.flux, "err": sim.err}, sim.truth
    realism = Realism.sky()
    if name.startswith("fitted"):
        from dataclasses import replace

        realism = replace(realism, unnormalised=True)
    sim = simulate(n, seed=seed, snr=snr, with_absorber_fraction=0.5, realism=realism,
                   kinematics="sky", ew_range=(0.05, 6.5))  # fmt: skip
    kw: dict = {"flux": sim.flux, "err": sim.err}
    if name.startswith("fitted"):
        kw["normalised"] = False
    if name == "fitted+z_em":
        kw["z_em"] = sim.truth.z_em
    return kw, sim.truth


def score(det: mgfast.Detector, kw: dict, t: mgfast.simulate.Truth) -> dict:
    d = det.detect(kw["flux"], None, kw["err"], normalised=kw.get("normalised", True),
                   z_em=kw.get("z_em"))  # fmt: skip
    p = np.asarray(d.probability, np.float64)
    has = t.has_absorber
    near = np.abs(np.nan_to_num(d.wavelength, nan=-1e9) - t.lambda2796) <= 5.0
    out: dict = {"at_1pct": {}}
    for s in [*PAPER_SNR, None]:
        sel = np.ones(len(p), bool) if s is None else t.snr == s
        neg = np.sort(p[sel & ~has])
        thr = neg[int(np.ceil(0.99 * len(neg))) - 1] if len(neg) else 1.0
        hit = (p > thr) & near
        out["at_1pct"]["all" if s is None else f"{s:g}"] = float(hit[sel & has].mean())
    out["fp_default"] = float(d.detected[~has].mean())
    found = d.detected & near
    forest = has & (t.lambda2796 < LYA * (1 + t.z_em))
    out["found_outside_forest"] = float(found[has & ~forest].mean())
    out["found_in_forest"] = float(found[forest].mean()) if forest.any() else float("nan")
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--model", action="append", required=True, help="model directory (repeat)")
    p.add_argument("--n-per-snr", type=int, default=400)
    p.add_argument("--markdown", help="also write the tables here")
    a = p.parse_args()
    t0 = time.time()
    dets = {m: mgfast.Detector(model=m) for m in a.model}
    rows: list[str] = []
    for name in SETS:
        kw, truth = make_set(name, a.n_per_snr)
        rows += [
            "",
            f"**{name}** ({len(truth):,} spectra, half with MgII, seed "
            f"{4081 + SETS.index(name)}): completeness at 1 % false positives (within 5 Å), "
            "false positives at the default threshold, found outside / inside the forest",
            "",
            "| model | " + " | ".join(f"SNR {s:g}" for s in PAPER_SNR)
            + " | all | FP at default | outside / in forest |",
            "|---|" + "---:|" * (len(PAPER_SNR) + 3),
        ]  # fmt: skip
        for m, det in dets.items():
            r = score(det, kw, truth)
            c = r["at_1pct"]
            rows.append(
                f"| {m} | " + " | ".join(f"{100 * c[f'{s:g}']:.1f}" for s in PAPER_SNR)
                + f" | **{100 * c['all']:.1f}** | {100 * r['fp_default']:.2f} % | "
                f"{100 * r['found_outside_forest']:.1f} / {100 * r['found_in_forest']:.1f} |"
            )  # fmt: skip
        print("\n".join(rows[-(len(dets) + 5) :]), flush=True)
    commit = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], capture_output=True,
                            text=True).stdout.strip()  # fmt: skip
    head = (
        f"{datetime.date.today()}, commit {commit}, {platform.processor() or platform.machine()} "
        f"({os.cpu_count()} cores), {time.time() - t0:.0f} s. Command: `python "
        f"training/validate_sky.py {' '.join('--model ' + m for m in a.model)} --n-per-snr "
        f"{a.n_per_snr}`"
    )
    if a.markdown:
        with open(a.markdown, "w") as f:
            f.write(head + "\n" + "\n".join(rows) + "\n")
    print(head)


if __name__ == "__main__":
    main()
