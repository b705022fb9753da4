"""The ``mgfast`` command line. Errors are one line on stderr and a non-zero exit code."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

import numpy as np

from . import __version__, _core, grid
from .atomic import MGII_2796, MGII_2803
from .preprocess import preprocess


def _info(_: argparse.Namespace) -> int:
    print(f"mgfast {__version__}")
    print(f"  CUDA support built: {'yes' if _core.built_with_cuda else 'no'}")
    n = _core.cuda_device_count()
    for d in range(n):
        print(f"  cuda:{d}: {_core.cuda_device_name(d)}")
    if _core.built_with_cuda and n == 0:
        print("  no CUDA device visible")
    print(f"  grid: {grid.N_PIX} pixels, R = {grid.RESOLVING_POWER:.0f}, Δlnλ = 1/20000")
    for a in grid.ARMS:
        print(f"    {a.name:5s} {a.lo:.0f}-{a.hi:.0f} Å  pixels {a.start}-{a.stop - 1}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from .testing import synthetic_quasar

    print(f"mgfast {__version__} demo: preprocessing onto the 4MOST grid")
    q = synthetic_quasar(
        args.n, z_em=1.25, z_abs=0.95, ew2796_rest=0.5, snr=args.snr, resolution=45000.0,
        pix_per_resel=3.0, seed=args.seed,
    )  # fmt: skip
    # a bad stretch and a few NaNs, as real spectra have
    q.flux[:, 1000:1040] = np.nan
    q.err[:, 5000:5010] = 0.0
    print(
        f"  input: {args.n} synthetic quasar spectra, z_em = 1.25, R = 45000, "
        f"{q.wave.size} pixels {q.wave[0]:.0f}-{q.wave[-1]:.0f} Å, unnormalised, "
        f"MgII doublet at z = 0.95 (rest EW2796 0.5 Å)"
    )
    t0 = time.perf_counter()
    out = preprocess(
        q.flux, q.wave, q.err, resolution=q.resolution, normalised=False,
        return_continuum=True, device=args.device,
    )  # fmt: skip
    dt = time.perf_counter() - t0
    truth = preprocess(q.continuum.astype(np.float32), q.wave, resolution=q.resolution).flux
    rel = np.abs(out.continuum / truth - 1)
    w, dw = grid.wavelength(), np.diff(grid.edges(), axis=1)[:, 0]
    win = np.zeros(w.size, bool)
    for line in (MGII_2796, MGII_2803):
        win |= np.abs(w - line.wavelength * 1.95) < 1.0
    ew = ((1 - out.flux[:, win]) * dw[win]).sum(1) / 1.95
    print(
        f"  output: {out.flux.shape[0]} x {out.flux.shape[1]} float32 on the grid in "
        f"{dt * 1e3:.1f} ms ({args.n / dt:,.0f} spectra/s on {args.device})"
    )
    print(f"  masked pixels per arm (blue, green, red), first spectrum: {out.n_masked[0].tolist()}")
    print(
        f"  continuum vs truth: median |error| {np.median(rel):.2%}, "
        f"95th percentile {np.percentile(rel, 95):.2%}"
    )
    print(
        f"  doublet rest EW (2796 + 2803) measured after normalisation: {ew.mean():.3f} ± "
        f"{ew.std():.3f} Å (true {0.5 + 0.5 / 1.2:.3f} Å)"
    )
    print("  detection needs the trained model, which is not shipped yet (see README.md)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="mgfast", description=__doc__)
    p.add_argument("--version", action="version", version=f"mgfast {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="version, build options, devices and the grid").set_defaults(
        func=_info
    )
    d = sub.add_parser("demo", help="preprocess synthetic quasar spectra and report accuracy")
    d.add_argument("--n", type=int, default=200, help="number of spectra (default 200)")
    d.add_argument("--snr", type=float, default=10.0, help="SNR per pixel (default 10)")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    d.set_defaults(func=_demo)
    args = p.parse_args(argv)
    try:
        if getattr(args, "n", 1) < 1:
            raise ValueError("--n: must be at least 1")
        return int(args.func(args))
    except (ValueError, RuntimeError, OSError) as e:
        print(f"mgfast {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"mgfast {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
