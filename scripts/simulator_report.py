"""Checks of the simulator for docs/RESULTS.md, and the paper's Figures 2 and 3 for docs/figures.

    python scripts/simulator_report.py [--n-ew 10000] [--n-snr 400] [--figures docs/figures]

Prints Markdown: equivalent widths of noiseless injected profiles measured by direct
integration against the truth; measured SNR at the arm centres against the requested SNR;
the doublet-ratio distribution; the mean transmitted flux of the Lyα forest against
τ_eff = 0.0018 (1 + z)^3.92. Figures: fig2_distributions.png (λ2796, EW2796, SNR, doublet ratio
of a training set), fig3_example.png (a spectrum: full, one arm, the doublet), snr_profile.png.
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import subprocess
from datetime import date

import numpy as np

import mgfast
from mgfast import grid
from mgfast.atomic import MGII_2796, MGII_2803
from mgfast.simulate import PAPER_SNR, Realism
from mgfast.testing import measure_doublet_ews

C_KMS = 299792.458
W = grid.wavelength()
DW = np.diff(grid.edges(), axis=1)[:, 0]


def ew_check(n: int) -> np.ndarray:
    sim = mgfast.simulate(n, seed=101, noise=False, with_absorber_fraction=1.0, return_clean=True)
    t = sim.truth
    ew = measure_doublet_ews(sim.clean, t.lambda2796, t.z)
    r1, r2 = ew[:, 0] / t.ew2796 - 1, ew[:, 1] / t.ew2803 - 1
    print(f"### Injected profiles: {n:,} noiseless absorbers (seed 101)\n")
    print("| quantity | max relative error | 99th percentile | median |")
    print("|---|---|---|---|")
    for name, r in (("EW2796 measured / truth", r1), ("EW2803 measured / truth", r2)):
        a = np.abs(r)
        print(f"| {name} | {a.max():.2e} | {np.percentile(a, 99):.2e} | {np.median(a):.2e} |")
    req = np.abs(t.ew2796 / t.abs_ew2796_requested[:, 0] - 1)
    print(f"| EW2796 truth / drawn | {req.max():.2e} | {np.percentile(req, 99):.2e} | "
          f"{np.median(req):.2e} |")  # fmt: skip
    print(f"\nEW solves that fell short of the drawn EW: {(t.flags & 1).sum()} of {n:,}.\n")
    ratio = t.ew2796 / t.ew2803
    edges = [0.8, 1.0, 1.1, 1.2, 1.3, 1.5, 1.75, 2.0, 2.1]
    counts, _ = np.histogram(ratio, bins=edges)
    print("Doublet ratio EW2796/EW2803 (the paper: mostly 1.0-1.3, range about 0.8-2.0):\n")
    print("| " + " | ".join(f"{a}-{b}" for a, b in itertools.pairwise(edges)) + " |")
    print("|" + "---|" * (len(edges) - 1))
    print("| " + " | ".join(f"{c / n:.1%}" for c in counts) + " |\n")
    return ratio


def snr_check(n: int) -> None:
    print(f"### SNR at the arm centres ({n} spectra per value, central 200 pixels of each arm)\n")
    print("| requested | blue | green | red | worst deviation |")
    print("|---|---|---|---|---|")
    for snr in PAPER_SNR:
        sim = mgfast.simulate(
            n, seed=102 + int(snr), snr=snr, with_absorber_fraction=0.0, return_clean=True
        )
        resid = sim.flux - sim.clean
        got = []
        for a in grid.ARMS:
            c = (a.start + a.stop) // 2
            got.append(1.0 / resid[:, c - 100 : c + 100].std())
        dev = max(abs(g / snr - 1) for g in got)
        print(f"| {snr:.0f} | " + " | ".join(f"{g:.2f}" for g in got) + f" | {dev:.2%} |")
    print()


def forest_check() -> None:
    print("### Lyα forest: mean transmitted flux (30 sightlines per row)\n")
    print("| z_em | arm | mean z of the forest | mean flux | exp(-0.0018 (1+z)^3.92) |")
    print("|---|---|---|---|---|")
    for z_em in (2.6, 3.9):
        sim = mgfast.simulate(30, seed=103 + int(10 * z_em), realism=Realism(forest=True),
                              noise=False, with_absorber_fraction=0.0,
                              z_em_range=(z_em, z_em))  # fmt: skip
        lya = 1215.67 * (1 + z_em)
        for a in grid.ARMS[:2]:
            m = W[a.slice] < lya * np.exp(-1000 / C_KMS)
            if m.sum() < 200:
                continue
            z = W[a.slice][m].mean() / 1215.67 - 1
            f = sim.flux[:, a.slice][:, m].mean()
            expected = np.exp(-0.0018 * (1 + z) ** 3.92)
            print(f"| {z_em} | {a.name} | {z:.2f} | {f:.3f} | {expected:.3f} |")
    print()


def figures(out: str, ratio: np.ndarray) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = mgfast.simulate(20000, seed=104)
    t = train.truth
    fig, ax = plt.subplots(2, 2, figsize=(10, 7))
    ax[0, 0].hist(t.lambda2796[t.has_absorber], bins=np.arange(3900, 6840, 40))
    ax[0, 0].set_xlabel("λ2796 observed (Å)")
    ax[0, 1].hist(t.ew2796[t.has_absorber], bins=np.arange(0.05, 5.16, 0.3))
    ax[0, 1].set_xlabel("rest EW2796 (Å)")
    ax[1, 0].hist(t.snr, bins=np.arange(0, 56, 1))
    ax[1, 0].set_xlabel("SNR at the arm centre")
    ax[1, 1].hist(ratio, bins=np.arange(0.8, 2.1, 0.05))
    ax[1, 1].set_xlabel("EW2796 / EW2803")
    for a in ax.flat:
        a.set_ylabel("spectra")
    fig.suptitle("Simulated training set (20,000 spectra, 80 % with an absorber; cf. paper Fig. 2)")
    fig.tight_layout()
    fig.savefig(os.path.join(out, "fig2_distributions.png"), dpi=110)
    plt.close(fig)

    ex = mgfast.simulate(1, seed=105, snr=10.0, with_absorber_fraction=1.0, return_clean=True,
                         ew_range=(1.0, 1.0))  # fmt: skip
    lam, z = ex.truth.lambda2796[0], ex.truth.z[0]
    arm = grid.ARMS[int(grid.arm_of(lam))]
    fig, ax = plt.subplots(3, 1, figsize=(10, 9))
    ax[0].plot(np.arange(grid.N_PIX), ex.flux[0], lw=0.4)
    ax[0].set_xlabel("pixel (gaps stripped)")
    ax[1].plot(W[arm.slice], ex.flux[0, arm.slice], lw=0.5)
    ax[1].set_xlabel(f"λ (Å), {arm.name} arm")
    near = np.abs(W - lam - 3.6 * (1 + z)) < 15
    ax[2].step(W[near], ex.flux[0, near], where="mid", lw=0.8, label="flux, SNR 10")
    ax[2].plot(W[near], ex.clean[0, near], lw=1.0, label="noiseless")
    for line in (MGII_2796, MGII_2803):
        ax[2].axvline(line.wavelength * (1 + z), color="k", ls=":", lw=0.8)
    ax[2].set_xlabel("λ (Å)")
    ax[2].legend()
    for a in ax:
        a.set_ylabel("normalised flux")
    fig.suptitle(f"Example: MgII at z = {z:.3f}, rest EW2796 = 1.0 Å, SNR 10 (cf. paper Fig. 3)")
    fig.tight_layout()
    fig.savefig(os.path.join(out, "fig3_example.png"), dpi=110)
    plt.close(fig)

    flat = mgfast.simulate(1, seed=106, snr=10.0, with_absorber_fraction=0.0)
    fig, ax = plt.subplots(figsize=(8, 3.5))
    ax.plot(np.arange(grid.N_PIX), 1 / flat.err[0], lw=1)
    ax.set_xlabel("pixel (gaps stripped)")
    ax.set_ylabel("SNR")
    ax.set_title("SNR profile: 10 at the arm centres, 4 at the ends, cosine taper over 420 pixels")
    fig.tight_layout()
    fig.savefig(os.path.join(out, "snr_profile.png"), dpi=110)
    plt.close(fig)
    print(f"Figures written to {out}: fig2_distributions.png, fig3_example.png, snr_profile.png\n")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--n-ew", type=int, default=10000)
    p.add_argument("--n-snr", type=int, default=400)
    p.add_argument("--figures", default=None, help="directory for the figures (none: skip)")
    args = p.parse_args()
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    print(f"date {date.today()}, commit {commit or 'unknown'}, mgfast {mgfast.__version__}, "
          f"{platform.machine()}, {os.cpu_count()} CPUs\n")  # fmt: skip
    ratio = ew_check(args.n_ew)
    snr_check(args.n_snr)
    forest_check()
    if args.figures:
        figures(args.figures, ratio)


if __name__ == "__main__":
    main()
