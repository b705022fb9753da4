"""Two-absorber sightlines of mgfast's own simulator, sky kinematics: recall within 5 Å, both
found, spurious absorbers per 100 sightlines, for multi-absorber models at their absorber
threshold. Fresh seeds (5511 idealised, 5512 Realism.sky()); 600 sightlines each with 1-2
absorbers (EW2796 0.5-4 Å, SNR 20), of which those with two systems at least 40 Å apart are
scored (issue 16's definition). The validation that decides between multi-absorber models before
the held-out family (training/evaluate_heldout.py --n-two) reports.

    python training/two_absorbers_sky.py multi runs/joint-sky1-model
"""

from __future__ import annotations

import sys

import numpy as np

import mgfast
from mgfast.simulate import Realism, simulate


def run(model: str, realism: Realism | None, seed: int) -> str:
    sim = simulate(600, seed=seed, snr=[20], max_absorbers=2, with_absorber_fraction=1.0,
                   kinematics="sky", ew_range=(0.5, 4.0), realism=realism)  # fmt: skip
    truth = sim.truth.abs_lambda2796
    d = mgfast.Detector(model=model).detect(sim.flux, None, sim.err)
    a = d.absorbers
    assert a is not None and d.absorber_threshold is not None
    keep = a.probability >= d.absorber_threshold
    rec = tot = spur = both = 0
    for i in range(len(sim.flux)):
        tl = truth[i][np.isfinite(truth[i])]
        if len(tl) != 2 or abs(tl[0] - tl[1]) < 40:
            continue
        found = a.lambda2796[(a.spectrum == i) & keep]
        hit = [bool(np.any(np.abs(found - x) <= 5)) for x in tl]
        rec, tot, both = rec + sum(hit), tot + 2, both + all(hit)
        spur += int(np.sum(~np.any(np.abs(found[:, None] - tl[None, :]) <= 5, axis=1)))
    n = tot // 2
    return (f"recall {100 * rec / tot:.1f} %, both {100 * both / n:.1f} %, spurious per 100 "
            f"{100 * spur / n:.1f} ({n} sightlines)")  # fmt: skip


if __name__ == "__main__":
    for m in sys.argv[1:]:
        print(m, "idealised:", run(m, None, 5511), flush=True)
        print(m, "Realism.sky():", run(m, Realism.sky(), 5512), flush=True)
