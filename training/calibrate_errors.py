"""Fit a multi-absorber model's error model (mgfast.absorbers.ErrorModel) on the simulator, so
that the catalogue's stated σ(λ2796), σ(z), σ(EW2796) and σ(EW2803) mean what they say:

    python training/calibrate_errors.py python/mgfast/models/multi [--n-per-snr 300] [--write]
        [--sets sky|both]

The model is run as users run it (mgfast.Detector, EWs combined), without any error model, on
the simulator's multi-absorber spectra at each SNR (seeds 6100 + SNR idealised, 6200 + SNR sky
mode: never a test or report set, and never the held-out family). Absorbers at or above the
threshold are matched within 5 Å. The λ scale is a power law in the spectrum's median SNR,
fitted (weighted least squares in log-log) to the robust spread σ68 of the λ pulls of each SNR
bin; each EW floor f is the relative systematic that, added in quadrature, brings the pulls' σ68
over all absorbers to 1. ``--sets sky`` (the default) fits on the sky mode alone, the
distribution the shipped networks are built for; ``both`` adds the idealised spectra.
training/pulls.py then reports the pulls on other seeds and on the held-out family.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

import mgfast
from mgfast_train.pull_sets import matched, sets


def sigma68(p: np.ndarray) -> float:
    lo, hi = np.percentile(p[np.isfinite(p)], [15.865, 84.135])
    return float((hi - lo) / 2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", help="a multi-absorber model directory")
    ap.add_argument("--n-per-snr", type=int, default=300)
    ap.add_argument("--sets", choices=("sky", "both"), default="sky")
    ap.add_argument("--write", action="store_true", help="store the fit in the model's model.json")
    a = ap.parse_args()
    src = Path(a.model)
    meta = json.loads((src / "model.json").read_text())
    with tempfile.TemporaryDirectory() as tmp:  # the model without any error model
        shutil.copy(src / "model.onnx", Path(tmp) / "model.onnx")
        raw = json.loads(json.dumps(meta))
        if isinstance(raw.get("calibration"), dict):
            raw["calibration"].pop("error_model", None)
        (Path(tmp) / "model.json").write_text(json.dumps(raw))
        det = mgfast.Detector(model=tmp)
        if not det.multi_absorber:
            raise SystemExit(f"{a.model}: not a multi-absorber model")
        cells = []  # per (set, SNR): λ residual/σ, median SNR; EW (value, σ, residual) per line
        for name, s, flux, err, lam, ew1, ew2, _ in sets(a.n_per_snr, 6000, heldout=False):
            if a.sets == "sky" and "sky" not in name:
                continue
            res, ab, ok, i, c = matched(det, flux, err, lam)
            cells.append({
                "set": name, "snr_bin": s, "snr": float(np.nanmedian(res.snr[i])),
                "pull_lambda": (ab.lambda2796[ok] - lam[i, c]) / ab.lambda2796_err[ok],
                "ew2796": (ab.ew2796[ok], ab.ew2796_err[ok], ab.ew2796[ok] - ew1[i, c]),
                "ew2803": (ab.ew2803[ok], ab.ew2803_err[ok], ab.ew2803[ok] - ew2[i, c]),
            })  # fmt: skip
            print(f"{name}, SNR {s}: {ok.sum()} matched", file=sys.stderr)
    # λ: ln σ68 = ln A + B ln(SNR / 10), weighted by the number of absorbers
    x = np.log(np.array([c["snr"] for c in cells]) / 10.0)
    y = np.log([sigma68(c["pull_lambda"]) for c in cells])
    w = np.array([c["pull_lambda"].size for c in cells], np.float64)
    design = np.stack([np.ones_like(x), x], axis=1) * np.sqrt(w)[:, None]
    (ln_a, b), *_ = np.linalg.lstsq(design, y * np.sqrt(w), rcond=None)
    fit = {"lambda_scale": float(np.exp(ln_a)), "lambda_slope": float(b)}
    for line in ("ew2796", "ew2803"):
        ew = np.concatenate([c[line][0] for c in cells]).astype(np.float64)
        sig = np.concatenate([c[line][1] for c in cells]).astype(np.float64)
        d = np.concatenate([c[line][2] for c in cells]).astype(np.float64)
        lo, hi = 0.0, 1.0
        if sigma68(d / sig) <= 1.0:
            hi = 0.0  # the noise already covers it: no floor
        for _ in range(50):  # σ68 falls as the floor grows
            f = 0.5 * (lo + hi)
            if sigma68(d / np.sqrt(sig * sig + (f * ew) ** 2)) > 1.0:
                lo = f
            else:
                hi = f
        fit[f"{line}_floor"] = float(round(hi, 4))
    which = "sky mode" if a.sets == "sky" else "idealised and sky mode"
    fit["fitted_on"] = (
        f"training/calibrate_errors.py --n-per-snr {a.n_per_snr} --sets {a.sets}: the "
        f"simulator's multi-absorber spectra ({which}, seeds 6000 + 100/200 + SNR), absorbers "
        "at the threshold matched within 5 Å"
    )
    print(json.dumps(fit, indent=1))
    if a.write:
        meta.setdefault("calibration", {})["error_model"] = fit
        (src / "model.json").write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
        mgfast.model.load_model(src)  # still valid
        print(f"wrote the error model into {src / 'model.json'}")


if __name__ == "__main__":
    main()
