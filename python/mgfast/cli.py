"""The ``mgfast`` command line. Errors are one line on stderr and a non-zero exit code."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from . import __version__, _core, grid
from .simulate import PAPER_SNR


def _info(_: argparse.Namespace) -> int:
    print(f"mgfast {__version__}")
    print(f"  CUDA support built: {'yes' if _core.built_with_cuda else 'no'}")
    onednn = f"yes (oneDNN {_core.onednn_version()})" if _core.built_with_onednn else "no"
    print(f"  CPU inference engine: {onednn}")
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
    from .detector import Detector, default_model_path
    from .simulate import Realism, simulate

    if args.n < 2:
        raise ValueError("--n: must be at least 2")
    kind = "realistic (Realism.survey())" if args.realistic else "idealised (the paper's)"
    print(f"mgfast {__version__} demo: {args.n:,} simulated {kind} spectra, half with a MgII "
          f"absorber, SNR {args.snr:g} at the arm centres, seed {args.seed}")  # fmt: skip
    sim = simulate(
        args.n, seed=args.seed, snr=args.snr, with_absorber_fraction=0.5,
        realism=Realism.survey() if args.realistic else None,
    )  # fmt: skip
    t = sim.truth
    detectors = []
    if (default_model_path() / "model.json").exists():
        detectors.append(("shipped network", Detector()))
    else:
        print("  (no shipped model in this installation: the network row is missing)")
    detectors.append(("matched filter", Detector(method="matched-filter")))
    print()
    print("  detector          accuracy  completeness  false alarms  MAE λ2796   spectra/s")
    for name, det in detectors:
        t0 = time.perf_counter()
        res = det.detect(sim.flux, err=sim.err)
        dt = time.perf_counter() - t0
        has, found = t.has_absorber, res.detected
        good = found & has
        mae = (
            np.nanmean(np.abs(res.wavelength[good] - t.lambda2796[good])) if good.any() else np.nan
        )
        print(f"  {name:16s}  {np.mean(found == has):8.1%}  {found[has].mean():12.1%}  "
              f"{found[~has].mean():12.1%}  {mae:7.2f} Å  {args.n / dt:10,.0f}")  # fmt: skip
    return 0


class _Progress:
    """A one-line progress bar on stderr (a tty) or a line per tenth (a log file)."""

    def __init__(self, total: int, what: str) -> None:
        self.total, self.what, self.t0 = total, what, time.perf_counter()
        self.tty = sys.stderr.isatty()
        self.next_log = 0.1

    def __call__(self, done: int) -> None:
        frac = done / max(self.total, 1)
        rate = done / max(time.perf_counter() - self.t0, 1e-9)
        line = f"{self.what}: {done:,}/{self.total:,} ({frac:.0%}) {rate:,.0f}/s"
        if self.tty:
            bar = "#" * int(30 * frac)
            print(f"\r[{bar:<30}] {line}", end="", file=sys.stderr, flush=True)
            if done >= self.total:
                print(file=sys.stderr)
        elif frac >= self.next_log or done >= self.total:
            print(line, file=sys.stderr, flush=True)
            self.next_log = frac + 0.1


def _simulate(args: argparse.Namespace) -> int:
    from .io_hdf5 import write_simulation
    from .simulate import Realism, simulate_stream

    if args.n < 1:
        raise ValueError("N: must be at least 1")
    out = Path(args.output)
    if out.suffix not in (".h5", ".hdf5"):
        raise ValueError(f"-o {out}: the output must be an HDF5 file (.h5 or .hdf5)")
    if out.exists() and not args.overwrite:
        raise ValueError(f"-o {out}: exists; pass --overwrite to replace it")
    if not out.parent.exists():
        raise ValueError(f"-o {out}: directory {out.parent} does not exist")
    realism = Realism.survey() if args.realistic else Realism()
    kw = dict(
        snr=args.snr, with_absorber_fraction=args.absorber_fraction,
        max_absorbers=args.max_absorbers, realism=realism, noise=not args.noiseless,
        device=args.device,
    )  # fmt: skip
    config = {**kw, "seed": args.seed, "start": args.start, "n": args.n}
    config["realism"] = vars(realism)
    batches = simulate_stream(
        args.batch, seed=args.seed, start=args.start, stop=args.start + args.n, **kw
    )
    n = write_simulation(out, batches, args.n, config, _Progress(args.n, "simulate"))
    last = args.start + n - 1
    print(f"wrote {n:,} spectra to {out} (seed {args.seed}, indices {args.start}-{last})")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="mgfast", description=__doc__)
    p.add_argument("--version", action="version", version=f"mgfast {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="version, build options, devices and the grid").set_defaults(
        func=_info
    )
    d = sub.add_parser("demo", help="detect MgII in simulated spectra with the shipped model")
    d.add_argument("--n", type=int, default=2000, help="number of spectra (default 2000)")
    d.add_argument("--snr", type=float, default=10.0, help="SNR at the arm centres (default 10)")
    d.add_argument("--realistic", action="store_true", help="spectra with Realism.survey()")
    d.add_argument("--seed", type=int, default=0)
    d.set_defaults(func=_demo)
    s = sub.add_parser("simulate", help="simulate spectra and write them to an HDF5 file")
    s.add_argument("n", metavar="N", type=int, help="number of spectra")
    s.add_argument("-o", "--output", required=True, help="output file (.h5)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--start", type=int, default=0, help="index of the first spectrum")
    s.add_argument("--snr", type=float, nargs="+", default=list(PAPER_SNR))
    s.add_argument("--absorber-fraction", type=float, default=0.8)
    s.add_argument("--max-absorbers", type=int, default=1)
    s.add_argument("--realistic", action="store_true", help="switch on Realism.survey()")
    s.add_argument("--noiseless", action="store_true")
    s.add_argument("--batch", type=int, default=4096, help="spectra per chunk written")
    s.add_argument("--device", default="cpu")
    s.add_argument("--overwrite", action="store_true")
    s.set_defaults(func=_simulate)
    args = p.parse_args(argv)
    try:
        return int(args.func(args))
    except (ValueError, RuntimeError, OSError) as e:
        print(f"mgfast {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"mgfast {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
