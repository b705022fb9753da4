"""A survey's files for tests and scripts: 4MOST files written fast, the ways a file can be
corrupt, a run of good and corrupt files, one big file, and the comparison of two catalogues."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import fitsio
import numpy as np

import mgfast


def write_fast(path: Path, wave: np.ndarray, flux: np.ndarray, err: np.ndarray, name: str) -> None:
    """A 4MOST L1 file (docs/io.md layout) written with fitsio: fast enough for a thousand."""
    data = np.zeros(1, dtype=[("WAVE", "f8", wave.size), ("FLUX", "f4", wave.size),
                              ("ERR_FLUX", "f4", wave.size)])  # fmt: skip
    data["WAVE"], data["FLUX"], data["ERR_FLUX"] = wave, flux, err
    hdr = [{"name": "INSTRUME", "value": "4MOST"}, {"name": "OBJECT", "value": name},
           {"name": "RA", "value": 1.5}, {"name": "DEC", "value": -3.0}]  # fmt: skip
    with fitsio.FITS(str(path), "rw", clobber=True) as f:
        f.write(None, header=hdr)
        f.write(data, units=["Angstrom", "", ""], extname="SPECTRUM")


CORRUPTIONS = ("truncated", "junk", "empty", "no-err-column", "string-wave", "nan-wave",
               "decreasing-wave", "wrong-unit", "image-only", "fake-npz")  # fmt: skip


def corrupt(path: Path, how: str, good: bytes) -> Path:
    if how == "truncated":
        path.write_bytes(good[: len(good) // 2])
    elif how == "junk":
        path.write_bytes(bytes(range(256)) * 40)
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "image-only":
        fitsio.write(str(path), np.zeros((4, 4), np.float32), clobber=True)
    elif how == "fake-npz":
        path = path.with_suffix(".npz")
        path.write_bytes(b"PK\x03\x04 this is no zip")
    else:
        w = mgfast.grid.wavelength().copy()
        one = np.ones(w.size, np.float32)
        if how == "no-err-column":
            data = np.zeros(1, dtype=[("WAVE", "f8", w.size), ("FLUX", "f4", w.size)])
            data["WAVE"], data["FLUX"] = w, one
            with fitsio.FITS(str(path), "rw", clobber=True) as f:
                f.write(None, header=[{"name": "INSTRUME", "value": "4MOST"}])
                f.write(data)
            return path
        if how == "string-wave":
            data = np.zeros(1, dtype=[("WAVE", "S8"), ("FLUX", "f4", w.size),
                                      ("ERR_FLUX", "f4", w.size)])  # fmt: skip
            with fitsio.FITS(str(path), "rw", clobber=True) as f:
                f.write(None, header=[{"name": "INSTRUME", "value": "4MOST"}])
                f.write(data)
            return path
        if how == "nan-wave":
            w[:] = np.nan
        elif how == "decreasing-wave":
            w = w[::-1].copy()
        elif how == "wrong-unit":
            w = w / 1e4  # µm values labelled Å: miss the arms
        write_fast(path, w, one, 0.1 * one, "bad")
    return path


def make_run(
    tmp: Path, n_good: int, corruptions: Sequence[str] = CORRUPTIONS, seed: int = 0
) -> tuple[Path, list[Path], mgfast.Simulation]:
    """n_good 4MOST files on the grid (a third with an absorber) and one file per corruption,
    interleaved; returns (directory, the bad files)."""
    d = tmp / "spectra"
    d.mkdir()
    w = mgfast.grid.wavelength()
    sim = mgfast.simulate(n_good, seed=seed, snr=15, with_absorber_fraction=0.33)
    cont = 1.0 + 0.3 * (w / 5000.0) ** -1.5  # not normalised: the continuum gets fitted
    bad = []
    step = max(1, n_good // max(1, len(corruptions)))
    ci = 0
    good_bytes = b""
    for i in range(n_good):
        p = d / f"q{i:05d}.fits"
        write_fast(p, w, sim.flux[i] * cont, sim.err[i] * cont, f"qso{i:05d}")
        if i == 0:
            good_bytes = p.read_bytes()
        if i % step == step - 1 and ci < len(corruptions):
            bad.append(corrupt(d / f"q{i:05d}x.fits", corruptions[ci], good_bytes))
            ci += 1
    return d, bad, sim


def same_catalogue(a: mgfast.Catalog, b: mgfast.Catalog) -> None:
    assert list(a.columns) == list(b.columns)
    for k in a.columns:
        np.testing.assert_array_equal(a.columns[k], b.columns[k], err_msg=k)
    assert [(e.file, e.reason) for e in a.errors] == [(e.file, e.reason) for e in b.errors]


def write_big_file(path: str, n: int, block: int = 1000) -> None:
    """One 4MOST-like FITS table of n simulated spectra on the grid, written a block at a time."""
    npix = mgfast.grid.N_PIX
    dtype = [("WAVE", "f8", npix), ("FLUX", "f4", npix), ("ERR_FLUX", "f4", npix)]
    with fitsio.FITS(path, "rw", clobber=True) as f:
        f.write(None, header={"INSTRUME": "4MOST", "OBJECT": "BENCH", "SPEC_RES": 20000.0})
        for start in range(0, n, block):
            m = min(block, n - start)
            sim = mgfast.simulate(m, seed=11, start=start, with_absorber_fraction=0.5)
            data = np.zeros(m, dtype)
            data["WAVE"], data["FLUX"], data["ERR_FLUX"] = (
                mgfast.grid.wavelength(),
                sim.flux,
                sim.err,
            )
            if start == 0:
                f.write(data, extname="SPECTRUM")
            else:
                f["SPECTRUM"].append(data)
