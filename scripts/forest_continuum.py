"""The continuum fit in the Lyman-alpha forest, with and without the quasar's redshift.

Spectra of mgfast's simulator in its sky mode (``Realism.sky()``: a Lyα forest whose mean flux
follows Faucher-Giguère et al. 2008, metals, interlopers, continuum errors, sky residuals, ...),
z_em 2.3-3.6 so that the blue arm holds forest, multiplied by a synthetic quasar continuum (power
law and broad emission lines, ``mgfast.testing.quasar_continuum``) and given to mgfast as
unnormalised flux (``normalised=False``). Two things are measured, each with z_em given and
without:

1. the fit: the fraction of pixels masked and the fitted over the true continuum, in the forest
   (rest 1040-1200 Å) and just redward of it (1200-1240 Å), on spectra without MgII;
2. detection by the shipped ``default`` model at its default threshold: MgII systems found within
   5 Å of the truth, in the forest and outside it, and false positives on spectra without one.

The forest's penalty (ContinuumOptions.forest_penalty) was chosen on another seed of the same
simulator (777); nothing here comes from the held-out family. Usage::

    python scripts/forest_continuum.py [--n 1400] [--seed 4071] [--markdown FILE] [--real NPZ]
"""

from __future__ import annotations

import argparse
import datetime
import platform
import subprocess
import time

import numpy as np

import mgfast
from mgfast import grid
from mgfast.simulate import PAPER_SNR, Realism, simulate
from mgfast.testing import quasar_continuum

FOREST = (1040.0, 1200.0)  # rest Å: the fit's forest (src/core/preprocess/continuum.hpp)
LYA = 1215.67


def unnormalised(sim: mgfast.simulate.Simulation) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The simulated spectra times a quasar continuum at their z_em: flux, err, continuum."""
    wave = grid.wavelength()
    cont = np.stack([quasar_continuum(wave, z) for z in sim.truth.z_em]).astype(np.float32)
    return sim.flux * cont, sim.err * cont, cont


def fit_figures(n: int, seed: int) -> list[tuple[str, str, float, float, float, float]]:
    """(z_em given?, region, masked %, median, 16th and 84th percentile of fitted / true)."""
    snr = list(PAPER_SNR)
    sim = simulate(n, seed=seed, snr=snr, realism=Realism.sky(), kinematics="sky",
                   with_absorber_fraction=0.0, z_em_range=(2.3, 3.6))  # fmt: skip
    flux, err, cont = unnormalised(sim)
    rest = grid.wavelength()[None, :] / (1 + sim.truth.z_em[:, None])
    regions = {
        "forest (rest 1040-1200 Å)": (rest > FOREST[0]) & (rest < FOREST[1]),
        "rest 1200-1240 Å": (rest >= FOREST[1]) & (rest < 1240.0),
        "rest > 1240 Å": rest >= 1240.0,
    }
    rows = []
    for given in (False, True):
        z_em = sim.truth.z_em if given else None
        pre = mgfast.preprocess(flux, None, err, normalised=False, return_continuum=True,
                                allow_empty=True, z_em=z_em)  # fmt: skip
        assert pre.continuum is not None
        ratio, masked = pre.continuum / cont, pre.pixmask != 0
        for name, sel in regions.items():
            ok = sel & ~masked
            q16, q50, q84 = np.percentile(ratio[ok], [16, 50, 84])
            rows.append(("yes" if given else "no", name, 100.0 * (sel & masked).sum() / sel.sum(),
                         q50, q16, q84))  # fmt: skip
    return rows


def detection_figures(n: int, seed: int) -> list[tuple[str, float, float, float, float, int, int]]:
    """(z_em given?, found % in the forest, outside, false positives %, those of them outside
    the forest %, counts in / outside)."""
    sim = simulate(n, seed=seed + 1, realism=Realism.sky(), kinematics="sky",
                   with_absorber_fraction=0.5, z_em_range=(2.3, 3.6))  # fmt: skip
    flux, err, _ = unnormalised(sim)
    t = sim.truth
    in_forest = t.has_absorber & (t.lambda2796 < LYA * (1 + t.z_em))
    outside = t.has_absorber & ~in_forest
    det = mgfast.Detector()
    rows = []
    for given in (False, True):
        d = det.detect(flux, grid.wavelength(), err, normalised=False,
                       z_em=t.z_em if given else None)  # fmt: skip
        found = d.detected & (np.abs(d.wavelength - t.lambda2796) <= 5.0)
        neg = ~t.has_absorber
        fp = 100.0 * d.detected[neg].mean()
        # what a catalogue with z_em keeps: detections at λ2796 redward of Lyα (not IN_FOREST)
        red = d.detected & (d.wavelength >= LYA * (1 + t.z_em))
        rows.append(("yes" if given else "no", 100.0 * found[in_forest].mean(),
                     100.0 * found[outside].mean(), fp, 100.0 * red[neg].mean(),
                     int(in_forest.sum()), int(outside.sum())))  # fmt: skip
    return rows


def real_figures(path: str) -> list[str]:
    """The real development spectra (evaluation only), unnormalised, without z_em and with it:
    per spectrum the masked fraction by reason and the row's detection."""
    from mgfast.flags import MASK_REASONS

    d = np.load(path)
    flux, err = d["flux"].copy(), d["err"].copy()
    bad = ~np.isfinite(flux) | ~np.isfinite(err) | (err <= 0)
    flux[bad], err[bad] = 0.0, 0.0
    det = mgfast.Detector()
    runs = [det.detect(flux, d["wave"], err, normalised=False, z_em=z)
            for z in (None, d["z_em"].astype(np.float64))]  # fmt: skip

    def masked(r: mgfast.Detections, i: int) -> str:
        assert r.masked_by is not None
        why = ", ".join(f"{m.name} {100 * r.masked_by[i, j]:.1f}"
                        for j, m in enumerate(MASK_REASONS) if r.masked_by[i, j] > 0)  # fmt: skip
        return f"{100 * r.masked_fraction[i]:.1f} %" + (f" ({why})" if why else "")

    def row(r: mgfast.Detections, i: int) -> str:
        if not r.detected[i]:
            return f"none (best p {r.probability[i]:.2f})"
        return f"λ2796 {r.wavelength[i]:.1f} Å, p {r.probability[i]:.3f}"

    lines = [
        "| spectrum | z_em | masked, without z_em | with z_em | detection without z_em | "
        "with z_em |",
        "|---|---:|---|---|---|---|",
    ]
    for i, name in enumerate(d["names"]):
        lines.append(f"| {name} | {d['z_em'][i]:.3f} | {masked(runs[0], i)} | "
                     f"{masked(runs[1], i)} | {row(runs[0], i)} | {row(runs[1], i)} |")  # fmt: skip
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--n", type=int, default=1400, help="spectra per part (default 1400)")
    p.add_argument("--seed", type=int, default=4071)
    p.add_argument("--markdown", help="also write the tables to this file")
    p.add_argument("--real", help="also the real development spectra (../shared/data/real_dev.npz)")
    a = p.parse_args()
    t0 = time.time()
    fit = fit_figures(a.n, a.seed)
    det = detection_figures(a.n, a.seed)
    commit = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], capture_output=True,
                            text=True).stdout.strip()  # fmt: skip
    lines = [
        f"{datetime.date.today()}, commit {commit}, {platform.processor() or platform.machine()}, "
        f"{time.time() - t0:.0f} s. Command: `python scripts/forest_continuum.py --n {a.n} "
        f"--seed {a.seed}" + (f" --real {a.real}" if a.real else "") + "`",
        "",
        f"The fit ({a.n} spectra without MgII, SNR {'/'.join(f'{s:g}' for s in PAPER_SNR)}, "
        f"seed {a.seed}):",
        "",
        "| z_em given | region | masked | fitted / true continuum: median [16th, 84th "
        "percentile] |",
        "|---|---|---:|---|",
        *(f"| {g} | {r} | {m:.1f} % | {q50:.3f} [{q16:.3f}, {q84:.3f}] |"
          for g, r, m, q50, q16, q84 in fit),
        "",
        f"Detection by `default` at its default threshold ({a.n} spectra, half with MgII, "
        f"seed {a.seed + 1}; found: within 5 Å):",
        "",
        "| z_em given | found in the forest | found outside it | false positives | ... of them "
        "outside the forest |",
        "|---|---:|---:|---:|---:|",
        *(f"| {g} | {fi:.1f} % (of {ni}) | {fo:.1f} % (of {no}) | {fp:.2f} % | {fr:.2f} % |"
          for g, fi, fo, fp, fr, ni, no in det),
    ]  # fmt: skip
    if a.real:
        lines += ["", f"The real development spectra ({a.real}), unnormalised, masked pixels in % "
                  "of the grid by reason (PixelFlag), and the row's detection by `default`:", "",
                  *real_figures(a.real)]  # fmt: skip
    text = "\n".join(lines) + "\n"
    print(text)
    if a.markdown:
        with open(a.markdown, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
