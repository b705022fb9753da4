"""Check that a refactor changed no result: snapshot every output, compare snapshots bit for bit.

    python scripts/refactor_check.py snapshot before.npz      # at the old commit
    python scripts/refactor_check.py snapshot after.npz       # at the new one
    python scripts/refactor_check.py compare before.npz after.npz

A snapshot holds, for the shipped ``default`` and ``multi`` models and the matched filter: every
column of ``Detector.detect`` (and the absorber columns) on the real development spectra
(../shared/data/real_dev.npz, given on their own wavelength grid with errors and z_em, as files
give them) and on 10,000 simulated spectra (seed 424242, survey realism, on the grid with err);
plus the catalogue ``mgfast detect`` writes for the real spectra as a FITS file, read back
column by column (its header cards too, but dates and the command line). ``compare`` demands
equality of every array, bit for bit (NaN equal to NaN), and exits 1 naming the first difference.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

import mgfast

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT.parent / "shared" / "data" / "real_dev.npz"
N_MOCK = 10_000
SEED = 424242
SKIP_CARDS = ("CMDLINE",)  # the command names a temporary directory; dates are skipped too


def _detections(prefix: str, det: mgfast.Detections, out: dict[str, np.ndarray]) -> None:
    for name, col in det.columns().items():
        out[f"{prefix}/{name}"] = np.asarray(col)
    absorbers = det.absorber_columns()
    if absorbers is not None:
        for name, col in absorbers.items():
            out[f"{prefix}/absorbers/{name}"] = np.asarray(col)


def _catalogue(model: str, out: dict[str, np.ndarray]) -> None:
    """The CLI's catalogue of the real spectra, each written as a one-row generic FITS table."""
    import fitsio

    from mgfast import cli

    d = np.load(REAL)
    with tempfile.TemporaryDirectory() as tmp:
        files = []
        for i in range(len(d["names"])):
            ok = np.isfinite(d["flux"][i]) & np.isfinite(d["err"][i]) & (d["err"][i] > 0)
            n = int(ok.sum())
            rows = np.zeros(
                1, dtype=[("wave", "f8", (n,)), ("flux", "f4", (n,)), ("err", "f4", (n,))]
            )
            rows["wave"][0], rows["flux"][0], rows["err"][0] = (
                d["wave"][ok],
                d["flux"][i][ok],
                d["err"][i][ok],
            )
            path = Path(tmp) / f"spec{i:02d}.fits"
            fitsio.write(str(path), rows, header={"Z_EM": float(d["z_em"][i])}, clobber=True)
            files.append(str(path))
        cat = Path(tmp) / "cat.fits"
        rc = cli.main(["detect", *files, "--model", model, "-o", str(cat)])
        out[f"cli/{model}/rc"] = np.asarray(rc)
        with fitsio.FITS(str(cat)) as f:
            for hdu in f:
                if hdu.get_exttype() == "IMAGE_HDU" and hdu.get_info().get("ndims", 0) == 0:
                    continue
                ext = hdu.get_extname() or str(hdu.get_extnum())
                data = hdu.read()
                for col in data.dtype.names or ():
                    v = data[col]
                    if col.lower() == "file":  # temporary directory names differ between runs
                        v = np.array([Path(str(s)).name for s in v])
                    out[f"cli/{model}/{ext}/{col}"] = v
                header = hdu.read_header()
                cards = [
                    f"{r['name']}={r.get('value')}/{r.get('comment')}"
                    for r in header.records()
                    if r["name"] not in SKIP_CARDS and "DATE" not in r["name"]
                ]
                out[f"cli/{model}/{ext}/header"] = np.array(cards)


def snapshot(path: str) -> None:
    out: dict[str, np.ndarray] = {}
    d = np.load(REAL)
    sim = mgfast.simulate(N_MOCK, seed=SEED, realism=mgfast.Realism.survey(), max_absorbers=2)
    for model in ("default", "multi", "matched-filter"):
        if model == "matched-filter":
            det = mgfast.Detector(method="matched-filter")
        else:
            det = mgfast.Detector(model=model)
        flux, err = d["flux"].copy(), d["err"].copy()
        bad = ~np.isfinite(flux) | ~np.isfinite(err) | (err <= 0)
        flux[bad], err[bad] = 0.0, 0.0
        _detections(f"real/{model}", det.detect(flux, d["wave"], err, z_em=d["z_em"]), out)
        _detections(f"mock/{model}", det.detect(sim.flux, err=sim.err), out)
        if model != "matched-filter":
            _catalogue(model, out)
    np.savez_compressed(path, **out)
    print(f"{path}: {len(out)} arrays, mgfast {mgfast.__version__}")


def _equal(a: np.ndarray, b: np.ndarray) -> bool:
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.dtype.kind == "f":
        return bool(np.array_equal(a.view(f"u{a.itemsize}"), b.view(f"u{b.itemsize}")))
    return bool(np.array_equal(a, b))


def compare(a_path: str, b_path: str) -> int:
    a, b = np.load(a_path), np.load(b_path)
    keys_a, keys_b = set(a.files), set(b.files)
    bad = sorted(keys_a ^ keys_b)
    for k in sorted(keys_a & keys_b):
        if not _equal(a[k], b[k]):
            bad.append(k)
    if bad:
        for k in bad[:20]:
            print(f"differs: {k}")
        print(f"{len(bad)} of {len(keys_a | keys_b)} arrays differ")
        return 1
    print(f"identical: all {len(keys_a)} arrays, bit for bit")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("snapshot")
    s.add_argument("out")
    c = sub.add_parser("compare")
    c.add_argument("a")
    c.add_argument("b")
    args = p.parse_args(argv)
    if args.cmd == "snapshot":
        snapshot(args.out)
        return 0
    return compare(args.a, args.b)


if __name__ == "__main__":
    sys.exit(main())
