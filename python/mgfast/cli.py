"""The ``mgfast`` command line. Errors are one line on stderr and a non-zero exit code."""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from . import __version__, _core, grid
from .io import FORMATS
from .options import parse_device
from .simulate import PAPER_SNR


def _info(_: argparse.Namespace) -> int:
    print(f"mgfast {__version__}")
    print(f"  CUDA support built: {'yes' if _core.built_with_cuda else 'no'}")
    onednn = f"yes (oneDNN {_core.onednn_version()})" if _core.built_with_onednn else "no"
    print(f"  CPU inference engine: {onednn}")
    from .engine import gpu_engine_module

    try:
        gpu = f"yes ({gpu_engine_module().library_versions()})"
    except RuntimeError as e:
        gpu = f"no: {e}"
    print(f"  GPU inference engine: {gpu}")
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
    from .detector import Detector, default_model_path, shipped_models
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
    print("  detector          accuracy  completeness  false alarms  MAE λ2796  EW2796 error"
          "   spectra/s")  # fmt: skip
    for name, det in detectors:
        t0 = time.perf_counter()
        res = det.detect(sim.flux, err=sim.err)
        dt = time.perf_counter() - t0
        has, found = t.has_absorber, res.detected
        good = found & has
        mae = (
            np.nanmean(np.abs(res.wavelength[good] - t.lambda2796[good])) if good.any() else np.nan
        )
        ew2796 = res.ew2796 if res.ew2796 is not None else np.full(good.shape, np.nan)
        ew = good & np.isfinite(ew2796)
        ew_err = np.median(np.abs(ew2796[ew] / t.ew2796[ew] - 1.0)) if ew.any() else np.nan
        print(f"  {name:16s}  {np.mean(found == has):8.1%}  {found[has].mean():12.1%}  "
              f"{found[~has].mean():12.1%}  {mae:7.2f} Å  {ew_err:12.1%}  "
              f"{args.n / dt:10,.0f}")  # fmt: skip
    if "multi" in shipped_models():
        _demo_multi(args)
    return 0


def _demo_multi(args: argparse.Namespace) -> int:
    """The demo's second part: every absorber in a sightline, with the shipped multi model."""
    from .absorbers import match
    from .detector import Detector
    from .simulate import Realism, simulate

    sim = simulate(
        args.n, seed=args.seed + 1, snr=args.snr, with_absorber_fraction=0.8, max_absorbers=4,
        realism=Realism.survey() if args.realistic else None,
    )  # fmt: skip
    t = sim.truth
    det = Detector(model="multi")
    t0 = time.perf_counter()
    res = det.detect(sim.flux, err=sim.err)
    dt = time.perf_counter() - t0
    a = res.absorbers
    assert a is not None
    sel = a.probability >= det.absorber_threshold
    col, found = match(a.spectrum[sel], a.lambda2796[sel], t.abs_lambda2796, 5.0)
    real = np.isfinite(t.abs_lambda2796)
    ok = col >= 0
    sp, k = a.spectrum[sel][ok], col[ok]
    dz = np.abs(a.z[sel][ok] - t.abs_z[sp, k])
    ew_err = np.abs(a.ew2796[sel][ok] / t.abs_ew2796[sp, k] - 1.0)
    print()
    print(f"Every absorber in a sightline (model 'multi'): {args.n:,} more spectra, 0-4 MgII "
          f"absorbers each, {int(real.sum()):,} absorbers in all")  # fmt: skip
    print()
    print("  completeness  purity  median |Δz|  EW2796 median error   spectra/s")
    purity = ok.mean() if ok.size else float("nan")
    print(f"  {found[real].mean():12.1%}  {purity:6.1%}  {np.median(dz):11.1e}  "
          f"{np.median(ew_err):19.1%}  {args.n / dt:10,.0f}")  # fmt: skip
    return 0


class _Progress:
    """A one-line progress bar on stderr (a tty) or a line per tenth (a log file)."""

    def __init__(self, total: int, what: str) -> None:
        self.total, self.what, self.t0 = total, what, time.perf_counter()
        self.tty = sys.stderr.isatty()
        self.next_log = 0.1

    def __call__(self, done: int, spectra: int | None = None) -> None:
        frac = done / max(self.total, 1)
        dt = max(time.perf_counter() - self.t0, 1e-9)
        line = f"{self.what}: {done:,}/{self.total:,} ({frac:.0%}) {done / dt:,.0f}/s"
        if spectra is not None:
            line += f", {spectra:,} spectra, {spectra / dt:,.0f} spectra/s"
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


PARTIAL = 3  # exit code of `mgfast detect` when some files failed (the catalogue is written)
INTERRUPTED = 130
EXIT_CODES = """exit codes:
  0    every input file was read and searched; the catalogue is written
  3    partial: some inputs failed (unreadable, missing, a pattern matching no file, a
       low-resolution file without --allow-low-resolution, an arm group that cannot be
       combined): each is a row of the error table; the catalogue is written
  2    usage error (a bad option or output path, an existing output without --overwrite, a
       journal without --resume or resumed with other settings, dask missing): nothing written
  130  interrupted: the journal keeps what was done; the same command with --resume finishes"""


def _detect(args: argparse.Namespace) -> int:
    import shlex
    import warnings

    from .catalog import SUFFIXES, absorbers_sibling
    from .detect_files import detect_files
    from .detector import Detector

    out = Path(args.output)
    if not out.name.endswith(SUFFIXES):
        raise ValueError(f"-o {out}: the catalogue must be .fits, .csv, .parquet, .h5 or .hdf5")
    if not out.parent.exists():
        raise ValueError(f"-o {out}: directory {out.parent} does not exist")
    if out.exists() and not (args.overwrite or args.resume):
        raise ValueError(f"-o {out}: exists; pass --overwrite to replace it")
    if args.files_per_chunk < 1:
        raise ValueError("--files-per-chunk: must be at least 1")
    parse_device(args.device, "--device")
    det = Detector(
        args.model, backend=args.device, method=args.method, threshold=args.threshold,
        threads=args.threads, precision=args.precision, ew=args.ew,
        absorber_threshold=args.absorber_threshold,
    )  # fmt: skip
    parts = out.with_name(out.name + ".parts")
    z_em = read_z_em_table(args.zem) if args.zem else None

    def warn_one_line(message, category, *_args, **_kw):  # type: ignore[no-untyped-def]
        print(f"mgfast detect: warning: {message}", file=sys.stderr)

    def bad_file(file: str, reason: str) -> None:
        print(f"mgfast detect: {file}: {reason}", file=sys.stderr, flush=True)

    bar: list[_Progress] = []

    def progress(done: int, total: int, spectra: int) -> None:
        if not bar:
            bar.append(_Progress(total, "detect"))
        bar[0](done, spectra)

    with warnings.catch_warnings():
        warnings.showwarning = warn_one_line
        try:
            cat = detect_files(
                det, args.paths, format=args.format,
                allow_low_resolution=args.allow_low_resolution, journal=parts,
                resume=args.resume, dask=args.dask, files_per_chunk=args.files_per_chunk,
                merge_arms=not args.no_merge_arms, progress=progress, on_error=bad_file,
                command=shlex.join(["mgfast", *args.argv]), z_em=z_em,
            )  # fmt: skip
        except KeyboardInterrupt:
            print(f"mgfast detect: interrupted; the results so far are in {parts}: run the same "
                  "command with --resume to finish", file=sys.stderr)  # fmt: skip
            return INTERRUPTED
    cat.write(out)
    shutil.rmtree(parts)  # the catalogue holds everything the journal did
    n_err = len(cat.errors)
    where = {".fits": "the ERRORS HDU", ".h5": "its errors group", ".hdf5": "its errors group"}.get(
        out.suffix, "the .errors file beside it"
    )
    print(f"wrote {len(cat):,} spectra from {cat.meta['n_files'] - n_err:,} files to {out}"
          + (f"; {n_err:,} files failed (listed in {where})" if n_err else ""))  # fmt: skip
    if cat.absorbers is not None:
        n_abs = len(cat.absorbers["spectrum"])
        n_det = int(np.count_nonzero(cat.absorbers["detected"]))
        where = {".fits": "the ABSORBERS HDU", ".h5": "its absorbers group"}.get(
            out.suffix.replace(".hdf5", ".h5"), str(absorbers_sibling(out))
        )
        print(f"wrote {n_abs:,} absorber candidates to {where}: {n_det:,} with probability >= "
              f"{det.absorber_threshold:g}")  # fmt: skip
    return PARTIAL if n_err else 0


def _plot(args: argparse.Namespace) -> int:
    from .plot import gallery

    if args.max is not None and args.max < 1:
        raise ValueError("--max: must be at least 1")
    if not Path(args.catalogue).exists():
        raise ValueError(f"{args.catalogue}: no such catalogue")
    page = gallery(
        args.catalogue, args.output, spectra=args.spectra, everything=args.all, limit=args.max,
        allow_low_resolution=args.allow_low_resolution,
    )  # fmt: skip
    n = len(list(Path(args.output).glob("*.png")))
    print(f"wrote {n:,} figures and {page}")
    return 0


Z_COLUMNS = ("z_em", "zem", "z_qso", "zqso", "z")
KEY_COLUMNS = ("id", "object", "obj_name", "targetid", "file", "filename")


def read_z_em_table(path: str) -> dict[str, float]:
    """``--zem TABLE``: {spectrum id or file name: z_em} from a CSV (header row) or FITS table."""
    p = Path(path)
    if not p.exists():
        raise ValueError(f"--zem {path}: no such file")
    if p.suffix.lower() in (".fits", ".fit", ".fits.gz"):
        import fitsio

        t = fitsio.read(str(p), ext=1)
        cols = {n.lower(): np.asarray(t[n]) for n in t.dtype.names}
    else:
        import csv

        with open(p, newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(line for line in fh if not line.startswith("#")))
        if not rows:
            raise ValueError(f"--zem {path}: empty table")
        head = [h.strip().lower() for h in rows[0]]
        cols = {h: np.array([r[k].strip() for r in rows[1:]]) for k, h in enumerate(head)}
    zc = next((c for c in Z_COLUMNS if c in cols), None)
    kc = next((c for c in KEY_COLUMNS if c in cols), None)
    if zc is None or kc is None:
        raise ValueError(
            f"--zem {path}: needs a redshift column ({', '.join(Z_COLUMNS)}) and a name column "
            f"({', '.join(KEY_COLUMNS)}); it has {', '.join(cols) or 'none'}"
        )
    try:
        z = np.asarray(cols[zc], np.float64)
    except ValueError:
        raise ValueError(f"--zem {path}: column {zc} holds values that are not numbers") from None
    keys = [k.decode().strip() if isinstance(k, bytes) else str(k).strip() for k in cols[kc]]
    return {k: float(v) for k, v in zip(keys, z, strict=True) if np.isfinite(v)}


def _bench(args: argparse.Namespace) -> int:
    from .bench import run

    parse_device(args.device, "--device")
    res = run(
        device=args.device, n=args.n, batch=args.batch, threads=args.threads, model=args.model,
        precision=args.precision, onnxruntime=not args.no_onnxruntime, seed=args.seed,
        repeat=args.repeat,
    )  # fmt: skip
    print(res.report())
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
    d = sub.add_parser(
        "detect", help="detect MgII in spectrum files and write a catalogue",
        description="Detect MgII in spectrum files (4MOST L1, ESO SDP, SDSS/BOSS, DESI, generic "
        "FITS tables, NumPy) and write a catalogue: one row per spectrum, one error per file "
        "that could not be read and, with a multi-absorber model, one row per absorber (FITS "
        "HDU ABSORBERS, or NAME.absorbers.csv/.parquet). Per-arm 4MOST files of one object are "
        "combined into one spectrum and one row. docs/io.md has the details.",
        epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    d.add_argument("paths", metavar="PATH", nargs="+", help="files, directories or glob patterns")
    d.add_argument(
        "-o", "--output", required=True, help="catalogue: .fits, .csv, .parquet, .h5 or .hdf5"
    )
    d.add_argument("--format", choices=FORMATS, help="file format (default: detected per file)")
    d.add_argument("--method", choices=("network", "matched-filter"), default="network")
    d.add_argument("--model", help="model directory (default: the shipped model)")
    d.add_argument(
        "--threshold",
        type=float,
        help="detection threshold, in [0, 1] for a network (default: the model's)",
    )
    d.add_argument("--absorber-threshold", type=float,
                   help="multi-absorber models: an absorber's probability threshold, in [0, 1] "
                   "(default: the model's); the spectrum row summarises the absorbers, so "
                   "--threshold sets it too")  # fmt: skip
    d.add_argument("--zem", metavar="TABLE",
                   help="quasar redshifts: a CSV or FITS table with a column z_em (or Z, "
                   "Z_EM, ZQSO) and a column id (or OBJECT, OBJ_NAME, file) naming the spectrum "
                   "or its file; see docs/io.md")  # fmt: skip
    d.add_argument("--threads", type=int, default=0, help="CPU threads (default 0: all)")
    d.add_argument("--device", default="cpu", help="cpu (default) or cuda[:N]: the GPU engine")
    d.add_argument("--precision", default="fp32", help="fp32 (default) or, on cuda, fp16")
    d.add_argument("--ew", choices=("combined", "network"), default="combined",
                   help="multi-absorber models: EWs measured on the spectrum and combined with "
                   "the network's (default), or the network's alone")  # fmt: skip
    d.add_argument("--resume", action="store_true",
                   help="finish an interrupted run from OUTPUT.parts/")  # fmt: skip
    d.add_argument("--overwrite", action="store_true", help="replace an existing catalogue")
    d.add_argument(
        "--dask",
        metavar="SCHEDULER",
        help="a dask scheduler address, or local:N for N local worker processes",
    )
    d.add_argument(
        "--allow-low-resolution",
        action="store_true",
        help="search SDSS/DESI-like spectra (R < 10000) despite the model's R = 20000",
    )
    d.add_argument("--files-per-chunk", type=int, default=64,
                   help="files per journal chunk and per dask task (default 64)")  # fmt: skip
    d.add_argument("--no-merge-arms", action="store_true",
                   help="search per-arm 4MOST files one by one instead of combining the arms "
                   "of each object (same OBJ_UID/OBJ_NAME/OBJECT) into one spectrum")  # fmt: skip
    d.set_defaults(func=_detect)
    pl = sub.add_parser(
        "plot", help="vetting figures and a gallery of a catalogue's detections",
        description="A figure per detected spectrum of a catalogue (mgfast detect's output): the "
        "preprocessed spectrum arm by arm with every candidate marked, and each absorber in "
        "velocity around both lines; DIR/index.html is a gallery sortable by probability.",
    )  # fmt: skip
    pl.add_argument("catalogue", help="a catalogue written by mgfast detect (or Detections.write)")
    pl.add_argument("-o", "--output", required=True, help="directory for the figures and page")
    pl.add_argument("--spectra", nargs="+", default=[], metavar="DIR",
                    help="where to look for files whose catalogue path is gone")  # fmt: skip
    pl.add_argument("--all", action="store_true", help="every row, not only detections")
    pl.add_argument("--max", type=int, help="at most this many figures (most probable first)")
    pl.add_argument("--allow-low-resolution", action="store_true")
    pl.set_defaults(func=_plot)
    b = sub.add_parser(
        "bench", help="throughput of detection on one device, split into stages",
        description="Time detection end to end on simulated realistic spectra (unnormalised, "
        "with forest, metals, sky residuals and bad pixels) already in memory: preprocessing, "
        "transfer, inference and decoding, with ONNX Runtime on the same model, input and "
        "threads as the baseline. Best of --repeat runs of each stage.",
    )  # fmt: skip
    b.add_argument("--device", default="cpu", help="cpu (default) or cuda[:N]")
    b.add_argument("--n", type=int, default=2048, help="spectra (default 2048)")
    b.add_argument(
        "--batch", type=int, default=None,
        help="spectra per engine chunk (default 64 on the CPU, 1024 on a GPU)",
    )  # fmt: skip
    b.add_argument("--threads", type=int, default=0, help="CPU threads (default 0: all)")
    b.add_argument("--model", help="model directory (default: the shipped model)")
    b.add_argument("--precision", default="fp32", help="fp32, or on cuda fp16")
    b.add_argument("--repeat", type=int, default=2, help="runs per stage, the best counts")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--no-onnxruntime", action="store_true", help="skip the baseline")
    b.set_defaults(func=_bench)
    args = p.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    try:
        return int(args.func(args))
    except (ValueError, RuntimeError, OSError) as e:
        print(f"mgfast {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"mgfast {args.command}: interrupted", file=sys.stderr)
        return INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
