"""Would a calibration curve make the shipped default's probabilities honest? A study, not a change:
fit an isotonic curve of P(absorber | probability) on the simulator's spectra (never on the
held-out family), then measure the expected calibration error (ECE, 10 bins) of the raw and the
curved probabilities on both held-out families.

    python training/calibration_study.py [--n-fit 3000] [--n-per-snr 200] [--model default]

Fit set: n-fit spectra per kind, half with an absorber, seed 4061: the sky mode idealised
(kinematics "sky", no realism) and realistic (``Realism.sky()``), SNR drawn as in training.
Held-out: ``mgfast_train.heldout_mock`` at SNR 3-50, seeds [90001, k] (idealised) and [90002, k]
(realistic) as training/evaluate_heldout.py draws them, half with an absorber.
"""

from __future__ import annotations

import argparse

import numpy as np

import mgfast
from mgfast.absorbers import expected_calibration_error, fit_calibration
from mgfast_train import heldout_mock as hm
from mgfast_train.provenance import cpu_name, git_commit

SNRS = (3, 5, 10, 20, 30, 40, 50)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n-fit", type=int, default=3000)
    p.add_argument("--n-per-snr", type=int, default=200)
    p.add_argument("--model", default="default")
    a = p.parse_args()
    det = mgfast.Detector(model=a.model)

    scores, labels = [], []
    for realism in (None, mgfast.Realism.sky()):
        sim = mgfast.simulate(
            a.n_fit, seed=4061, with_absorber_fraction=0.5, kinematics="sky", realism=realism
        )
        scores.append(det.detect(sim.flux, err=sim.err).probability)
        labels.append(np.asarray(sim.truth.has_absorber, bool))
    curve = fit_calibration(np.concatenate(scores), np.concatenate(labels))
    print(f"# {a.model}: isotonic curve fitted on {2 * a.n_fit} simulator spectra (sky mode, "
          f"seed 4061); {len(curve[0])} knots")  # fmt: skip
    print(f"# commit {git_commit()}, {cpu_name()}")
    print("| set | ECE raw | ECE with the curve |")
    print("|---|---:|---:|")
    for fam, seed in (("idealised", 90001), ("realistic", 90002)):
        parts = [
            hm.generate(a.n_per_snr, family=fam, seed=[seed, k], snr=s) for k, s in enumerate(SNRS)
        ]
        flux = np.concatenate([x["flux"] for x in parts])
        err = np.concatenate([x["err"] for x in parts])
        has = np.concatenate([x["truth"]["has_absorber"] for x in parts]).astype(bool)
        prob = det.detect(flux, err=err).probability.astype(np.float64)
        raw = expected_calibration_error(prob, has)[0]
        cal = expected_calibration_error(np.interp(prob, *curve), has)[0]
        print(f"| held-out, {fam} ({has.size} spectra) | {100 * raw:.1f} % | {100 * cal:.1f} % |")


if __name__ == "__main__":
    main()
