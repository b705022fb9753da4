"""Detectors on real quasar spectra (../shared/data/real_dev.npz, see its README): arm by arm, at
native SNR and with noise added to SNR 10 and 5, the systems found within 5 Å of their λ2796 and
the false alarms in clean arms. Evaluation only: nothing here is trained or tuned on these data.

    KERAS_BACKEND=jax python training/real_data.py --data ../shared/data/real_dev.npz \
        --model runs/fcn/final.keras --arch mgfast_fcn [--matched-filter] [--seeds 5]
    python training/real_data.py --ew-model multi     # the EWs of the visible systems: the
        network's, measured on the spectrum (mgfast.ew) and combined, at native SNR
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("KERAS_BACKEND", "jax")

import numpy as np

import mgfast
from mgfast import grid
from mgfast_train.detectors import keras_detector, matched_filter_detector, package_detector


def arm_cases(d) -> list[tuple[int, int, float | None]]:  # type: ignore[no-untyped-def]
    """(spectrum, arm, λ2796 of the visible system there or None for a clean arm)."""
    cases = []
    for s, a, lam, vis in zip(
        d["sys_spec"], d["sys_arm"], d["sys_lam2796"], d["sys_visible"], strict=True
    ):
        if vis:
            cases.append((int(s), int(a), float(lam)))
    for s, a in zip(d["clean_spec"], d["clean_arm"], strict=True):
        cases.append((int(s), int(a), None))
    return cases


def one_arm(d, s: int, a: int, snr: float | None, rng) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[no-untyped-def]
    """Normalised flux and error of spectrum s with only arm a kept (the rest NaN), with noise
    added to reach `snr` per pixel where the spectrum is better than that."""
    f = d["flux_norm"][s].astype(np.float64).copy()
    e = d["err_norm"][s].astype(np.float64).copy()
    keep = np.zeros(grid.N_PIX, bool)
    keep[grid.ARMS[a].slice] = True
    keep &= d["coverage"][s] & np.isfinite(f) & np.isfinite(e) & (e > 0)
    if snr is not None:
        add = np.sqrt(np.clip((1.0 / snr) ** 2 - e**2, 0.0, None))
        f = f + add * rng.standard_normal(f.size)
        e = np.sqrt(e**2 + add**2)
    f[~keep] = np.nan
    e[~keep] = 0.0
    return f.astype(np.float32), e.astype(np.float32)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", default="../shared/data/real_dev.npz")
    p.add_argument("--model", action="append", default=[])
    p.add_argument("--arch", action="append", default=[])
    p.add_argument("--name", action="append", default=[])
    p.add_argument(
        "--mgfast-model",
        action="append",
        default=[],
        help="an exported model directory (repeatable), run through mgfast.Detector and scored "
        "at its own default threshold",
    )
    p.add_argument("--matched-filter", action="store_true")
    p.add_argument("--seeds", type=int, default=5, help="noise realisations at SNR 10 and 5")
    p.add_argument("--ew-model", help="a shipped multi-absorber model (or directory): its EWs")
    args = p.parse_args()
    d = np.load(args.data, allow_pickle=False)
    cases = arm_cases(d)
    if args.ew_model:
        ew_table(d, cases, args.ew_model)
        return
    n_sys = sum(c[2] is not None for c in cases)
    n_clean = len(cases) - n_sys
    dets = [
        (args.name[i] if i < len(args.name) else args.arch[i], keras_detector(m, args.arch[i]))
        for i, m in enumerate(args.model)
    ]
    for m in args.mgfast_model:
        dets.append((f"{m} (default threshold)", at_default_threshold(m)))
    if args.matched_filter:
        dets.append(("matched filter", matched_filter_detector()))
    print(f"{n_sys} visible systems and {n_clean} clean arms in {d['flux'].shape[0]} spectra.\n")
    print("| detector | SNR | systems found | false alarms in clean arms |")
    print("|---|---|---|---|")
    for name, det in dets:
        for snr in (None, 10.0, 5.0):
            seeds = 1 if snr is None else args.seeds
            found = alarms = 0
            for k in range(seeds):
                rng = np.random.default_rng(1000 + k)
                rows = [one_arm(d, s, a, snr, rng) for s, a, _ in cases]
                flux = np.stack([r[0] for r in rows])
                err = np.stack([r[1] for r in rows])
                pre = mgfast.preprocess(flux, None, err, allow_empty=True)
                score, lam, thr = det(pre.flux, np.where(pre.ivar > 0, pre.err, 0.0), pre.ivar)
                for (_, _, true), sc, lp in zip(cases, score, lam, strict=True):
                    if true is None:
                        alarms += int(sc >= thr)
                    else:
                        found += int(sc >= thr and abs(lp - true) <= 5.0)
            label = "native" if snr is None else f"{snr:.0f} ({seeds} noise draws)"
            print(
                f"| {name} | {label} | {found / seeds:.1f} / {n_sys} | "
                f"{alarms / seeds:.1f} / {n_clean} |"
            )


def at_default_threshold(model_dir: str):  # type: ignore[no-untyped-def]
    """An exported model as users run it, scored at its own default threshold."""
    run = package_detector(model_dir)
    thr = mgfast.model.load_model(model_dir).thresholds["default"]

    def det(flux, err, ivar):  # type: ignore[no-untyped-def]
        prob, lam, _ = run(flux, err, ivar)
        return prob, lam, thr

    return det


def ew_table(d, cases, model: str) -> None:  # type: ignore[no-untyped-def]
    """Per visible system the absorber found nearest its λ2796 (within 5 Å) and its rest EWs:
    the network's alone, measured on the spectrum, and combined (Detector(ew=...))."""
    sys_cases = [c for c in cases if c[2] is not None]
    rows = [one_arm(d, s, a, None, None) for s, a, _ in sys_cases]
    flux, err = np.stack([r[0] for r in rows]), np.stack([r[1] for r in rows])
    res = {
        m: mgfast.Detector(model=model, ew=m).detect(flux, err=err) for m in ("network", "combined")
    }
    print("| spectrum | R native | z | EW2796 network | measured | combined | EW2803 network | "
          "measured | combined |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    for i, (s, _, lam) in enumerate(sys_cases):
        a_net, a = res["network"].absorbers, res["combined"].absorbers
        k = np.flatnonzero((a.spectrum == i) & (np.abs(a.lambda2796 - lam) <= 5.0))
        name = f"{d['names'][s]}"
        if k.size == 0:
            print(f"| {name} | {d['R_native'][s]:.0f} | {lam / 2796.3543 - 1:.4f} | not found |")
            continue
        k = k[np.argmax(a.probability[k])]
        cells = [f"{a.z[k]:.4f}"]
        for line in ("ew2796", "ew2803"):
            net, net_e = getattr(a_net, line)[k], getattr(a_net, line + "_err")[k]
            m, m_e = getattr(a, line + "_measured")[k], getattr(a, line + "_measured_err")[k]
            c, c_e = getattr(a, line)[k], getattr(a, line + "_err")[k]
            cells += [f"{net:.2f} ± {net_e:.2f}", f"{m:.2f} ± {m_e:.2f}", f"{c:.2f} ± {c_e:.2f}"]
        print(f"| {name} | {d['R_native'][s]:.0f} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
