"""Issue 21's survey scenario end to end: 1,000 files of which 10 are corrupt (each of a
different kind), plus one low-resolution file and one per-arm group that cannot be combined;
`mgfast detect` must account for every file (a row or an error row) and exit 3 (partial); then
the same run killed with SIGKILL at several points, resumed each time, must end with the clean
run's catalogue.

    python scripts/survey_robustness.py [--n-good 990] [--kills 4] [--method network]

Prints a table for docs/BENCHMARKS.md. Uses the test suite's file writers (tests/).
"""

from __future__ import annotations

import argparse
import gzip
import io
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from mgfast.catalog import read_catalog
from mgfast.detect_files import expand_paths
from mgfast.testing.spectrum_files import quasar, write_4most_arms, write_sdss
from mgfast.testing.survey import CORRUPTIONS, make_run, same_catalogue

ROOT = Path(__file__).resolve().parent.parent


def more_corrupt(d: Path) -> list[Path]:
    """Three kinds the issue measured beyond the test suite's: a truncated .fits.gz, a header
    card with bytes that are not ASCII, a .npy whose header is garbage."""
    good = (d / "q00000.fits").read_bytes()
    gz = d / "q00000t.fits.gz"
    gz.write_bytes(gzip.compress(good)[: len(gzip.compress(good)) // 2])
    at = good.index(b"TFORM1  = '") + 11
    nonascii = d / "q00000n.fits"
    nonascii.write_bytes(good[:at] + b"\xe9\xe9\xe9" + good[at + 3 :])
    npy = d / "q00000h.npy"
    buf = io.BytesIO()
    np.save(buf, np.ones(10))
    raw = bytearray(buf.getvalue())
    raw[10:30] = b"{'descr': <f8(((((( "
    npy.write_bytes(bytes(raw))
    return [gz, nonascii, npy]


def extras(d: Path) -> list[Path]:
    """One low-resolution (SDSS) file and one per-arm object with two files of its green arm."""
    w = 10 ** (3.55 + 1e-4 * np.arange(3800))
    low = write_sdss(d / "sdss-spec.fits", w, np.ones(w.size), np.full(w.size, 25.0),
                     np.zeros(w.size, np.int32))  # fmt: skip
    q = quasar()
    arms = write_4most_arms(d, "armobj", q.wave, q.flux[0], q.err[0], header={"OBJ_UID": 77})
    dup = d / "armobj_green_again.fits"
    dup.write_bytes(arms[1].read_bytes())
    return [low, *arms, dup]


def detect(argv: list[str]) -> subprocess.Popen:  # type: ignore[type-arg]
    return subprocess.Popen([sys.executable, "-m", "mgfast", "detect", *argv],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n-good", type=int, default=990)
    p.add_argument("--kills", type=int, default=4)
    p.add_argument("--method", default="network", choices=("network", "matched-filter"))
    p.add_argument("--big", type=int, default=0, help="also one file of this many spectra")
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        kinds = CORRUPTIONS[:7]
        d, bad, _ = make_run(tmp, a.n_good, corruptions=kinds)
        bad += more_corrupt(d)
        kinds += ("truncated .fits.gz", "non-ASCII bytes in a TFORM card", "garbage .npy header")
        odd = extras(d)
        files = expand_paths([d])
        args = ["--method", a.method, "--files-per-chunk", "16"]
        clean = tmp / "clean.fits"
        t0 = time.perf_counter()
        rc = subprocess.run([sys.executable, "-m", "mgfast", "detect", str(d), "-o", str(clean),
                             *args], capture_output=True, text=True).returncode  # fmt: skip
        took = time.perf_counter() - t0
        cat = read_catalog(clean)
        in_rows = set(f for fs in cat.columns["file"] for f in str(fs).split(";"))
        errors = {e.file for e in cat.errors}
        accounted = set(files) <= (in_rows | errors)
        print(f"{len(files)} files: {a.n_good} good, {len(bad)} corrupt ({', '.join(kinds)}),"
              f" 1 low-resolution, {len(odd) - 1} files of one per-arm object with its green arm"
              " twice")  # fmt: skip
        print()
        print("| run | exit code | rows | error rows | every file a row or an error row | "
              "catalogue equal to the clean run's | wall time (s) |")  # fmt: skip
        print("|---|---|---|---|---|---|---|")
        print(f"| clean | {rc} | {len(cat)} | {len(cat.errors)} | {'yes' if accounted else 'NO'}"
              f" | (reference) | {took:.0f} |")  # fmt: skip
        # killed a.kills times (after 1, 2, ... a.kills more journal chunks), resumed each time
        out = tmp / "killed.fits"
        parts = Path(str(out) + ".parts")
        t0 = time.perf_counter()
        for k in range(a.kills):
            argv = [str(d), "-o", str(out), *args] + (["--resume"] if k else [])
            before = len(list(parts.glob("chunk-*.npz"))) if parts.exists() else 0
            proc = detect(argv)
            while proc.poll() is None:
                if parts.exists() and len(list(parts.glob("chunk-*.npz"))) >= before + 1 + k:
                    os.kill(proc.pid, signal.SIGKILL)
                    break
                time.sleep(0.01)
            proc.wait()
        final = [sys.executable, "-m", "mgfast", "detect", str(d), "-o", str(out), *args]
        rc2 = subprocess.run([*final, "--resume"], capture_output=True, text=True).returncode
        took2 = time.perf_counter() - t0
        resumed = read_catalog(out)
        try:
            same_catalogue(cat, resumed)
            same = "yes"
        except AssertionError as e:
            same = f"NO ({str(e).splitlines()[0][:80]})"
        print(
            f"| SIGKILL {a.kills} times, --resume each time | {rc2} | {len(resumed)} | "
            f"{len(resumed.errors)} | {'yes' if accounted else 'NO'} | {same} | {took2:.0f} |"
        )
        if a.big:
            big_file(tmp, a.big, a.kills, a.method)


def big_file(tmp: Path, n: int, kills: int, method: str) -> None:
    """One file of n spectra, killed inside it (after each run journals one more part of 512
    spectra) and resumed each time: the resumed catalogue against the clean run's."""
    from mgfast.testing.survey import write_big_file as write_file

    path = tmp / "big.fits"
    write_file(str(path), n)
    args = ["--method", method]
    clean = tmp / "big-clean.fits"
    cmd = [sys.executable, "-m", "mgfast", "detect", str(path), "-o", str(clean), *args]
    subprocess.run(cmd, capture_output=True, check=False)
    out = tmp / "big-killed.fits"
    parts = Path(str(out) + ".parts") / "parts"
    seen = []
    for k in range(kills):
        argv = [str(path), "-o", str(out), *args] + (["--resume"] if k else [])
        before = len(list(parts.glob("*.npz"))) if parts.exists() else 0
        proc = detect(argv)
        while proc.poll() is None:
            if parts.exists() and len(list(parts.glob("*.npz"))) >= before + 1:
                os.kill(proc.pid, signal.SIGKILL)
                break
            time.sleep(0.01)
        proc.wait()
        seen.append(len(list(parts.glob("*.npz"))) if parts.exists() else 0)
    final = [sys.executable, "-m", "mgfast", "detect", str(path), "-o", str(out), *args]
    rc = subprocess.run([*final, "--resume"], capture_output=True, text=True).returncode
    a, b = read_catalog(clean), read_catalog(out)
    try:
        same_catalogue(a, b)
        same = "yes"
    except AssertionError as e:
        same = f"NO ({str(e).splitlines()[0][:80]})"
    print()
    print(
        f"One file of {n:,} spectra, SIGKILL {kills} times inside it (journalled parts of 512 "
        f"spectra after each kill: {', '.join(map(str, seen))}), --resume each time: exit code "
        f"{rc}, {len(b):,} rows, catalogue equal to the clean run's: {same}"
    )


if __name__ == "__main__":
    main()
