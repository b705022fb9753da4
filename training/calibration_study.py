"""A calibration curve for a single-absorber model's probability: fit it on the simulator's spectra
(never on the held-out family), measure the expected calibration error (ECE, 10 bins) of the
network's and of the curved probabilities on both held-out families, and (``--write``) put the
curve into the model directory.

    python training/calibration_study.py [--n-fit 3000] [--n-per-snr 200] [--model default]
    python training/calibration_study.py --model DIR --write   # DIR's model.json gets the curve

Fit set: n-fit spectra per kind, half with an absorber, seed 4061, from mgfast's simulator: the sky
mode idealised (kinematics "sky", no realism) and realistic (``Realism.sky()``). The curve is the
isotonic fit of P(absorber | network probability) (``mgfast.absorbers.fit_calibration``) with a
1e-6 slope added, so that it keeps the network's ranking. Held-out: ``mgfast_train.heldout_mock``
at SNR 3-50, seeds [90001, k] (idealised) and [90002, k] (realistic) as
training/evaluate_heldout.py draws them, half with an absorber. A model that already has a curve
is measured through a copy without it (the "network" column is then the network's own
probability, the other the curve fitted here). ``--write`` refuses a model that has a curve, and
maps the model's thresholds through the curve, so that its detections stay what they were.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np

import mgfast
from mgfast.absorbers import expected_calibration_error, fit_calibration
from mgfast.detector import resolve_model
from mgfast_train import heldout_mock as hm
from mgfast_train.provenance import cpu_name, git_commit

SNRS = (3, 5, 10, 20, 30, 40, 50)
SEED = 4061
SLOPE = 1e-6


def fit_curve(det: mgfast.Detector, n_fit: int) -> tuple[np.ndarray, np.ndarray]:
    """The strictly increasing curve (x, y) of P(absorber | det's probability) on the fit set."""
    scores, labels = [], []
    for realism in (None, mgfast.Realism.sky()):
        sim = mgfast.simulate(
            n_fit, seed=SEED, with_absorber_fraction=0.5, kinematics="sky", realism=realism
        )
        scores.append(det.detect(sim.flux, err=sim.err).probability)
        labels.append(np.asarray(sim.truth.has_absorber, bool))
    x, y = fit_calibration(np.concatenate(scores), np.concatenate(labels))
    y = np.clip(y * (1 - SLOPE) + SLOPE * x, 0.0, 1.0)
    if not (np.all(np.diff(x) > 0) and np.all(np.diff(y) > 0)):
        raise RuntimeError("the calibration curve is not strictly increasing")
    return x, y


def write_curve(model_dir: Path, curve: tuple[np.ndarray, np.ndarray], n_fit: int) -> dict:
    """model.json with the curve and the thresholds mapped through it."""
    path = model_dir / "model.json"
    meta = json.loads(path.read_text())
    if "calibration" in meta:
        raise SystemExit(f"{path}: has a calibration already; give the model without it")
    x, y = curve
    raw = dict(meta["thresholds"])
    meta["thresholds"] = {k: float(np.interp(v, x, y)) for k, v in raw.items()}
    meta["calibration"] = {
        "kind": "isotonic, piecewise linear (strictly increasing)",
        "x": [float(v) for v in x],
        "y": [float(v) for v in y],
    }
    meta["training"]["calibration"] = (
        f"isotonic P(absorber | network probability) on {2 * n_fit:,} simulator spectra (sky "
        "mode, half idealised and half Realism.sky(), half with an absorber, seed "
        f"{SEED}; training/calibration_study.py), a 1e-6 slope added so that it keeps the "
        "ranking; the thresholds are the earlier ones (chosen on the network's probabilities, "
        f"see thresholds) mapped through it: raw {raw}"
    )
    path.write_text(json.dumps(meta, indent=1, ensure_ascii=False) + "\n")
    return meta


def uncalibrated(model_dir: Path, tmp: Path) -> Path:
    """model_dir itself, or a copy of it without its curve (thresholds left as they are: only
    the probabilities are measured here)."""
    meta = json.loads((model_dir / "model.json").read_text())
    if "calibration" not in meta:
        return model_dir
    out = tmp / model_dir.name
    shutil.copytree(model_dir, out)
    del meta["calibration"]
    (out / "model.json").write_text(json.dumps(meta, indent=1))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n-fit", type=int, default=3000)
    p.add_argument("--n-per-snr", type=int, default=200)
    p.add_argument("--model", default="default")
    p.add_argument("--write", action="store_true", help="write the curve into the model's json")
    a = p.parse_args()
    model_dir = resolve_model(a.model)
    with tempfile.TemporaryDirectory() as tmp:
        det = mgfast.Detector(model=uncalibrated(model_dir, Path(tmp)))
        curve = fit_curve(det, a.n_fit)
        if a.write:
            meta = write_curve(model_dir, curve, a.n_fit)
            print(f"{model_dir}/model.json: {len(curve[0])} knots; thresholds {meta['thresholds']}")
            return
        print(f"# {a.model}: curve fitted on {2 * a.n_fit} simulator spectra (sky mode, seed "
              f"{SEED}); {len(curve[0])} knots")  # fmt: skip
        print(f"# commit {git_commit()}, {cpu_name()}")
        print("| set | ECE of the network | ECE with the curve |")
        print("|---|---:|---:|")
        for fam, seed in (("idealised", 90001), ("realistic", 90002)):
            parts = [
                hm.generate(a.n_per_snr, family=fam, seed=[seed, k], snr=s)
                for k, s in enumerate(SNRS)
            ]
            flux = np.concatenate([x["flux"] for x in parts])
            err = np.concatenate([x["err"] for x in parts])
            has = np.concatenate([x["truth"]["has_absorber"] for x in parts]).astype(bool)
            prob = det.detect(flux, err=err).probability.astype(np.float64)
            raw = expected_calibration_error(prob, has)[0]
            cal = expected_calibration_error(np.interp(prob, *curve), has)[0]
            print(f"| held-out, {fam} ({has.size} spectra) | {100 * raw:.1f} % | "
                  f"{100 * cal:.1f} % |")  # fmt: skip


if __name__ == "__main__":
    main()
