"""Spectrum files in each layout docs/io.md documents, written with astropy.io.fits (another
library than the fitsio the readers use), for the reader and detect-files tests."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from pathlib import Path

import numpy as np
import numpy.typing as npt
from astropy.io import fits

from mgfast.testing import SyntheticQuasar, synthetic_quasar

Z_ABS = 0.95
LAMBDA2796 = 2796.3543 * (1 + Z_ABS)  # 5452.94 Å, in the green arm


def quasar(n: int = 1, seed: int = 0, snr: float = 30.0) -> SyntheticQuasar:
    """Synthetic quasars (R = 20000, 3850-6870 Å, vacuum) with a strong MgII doublet at Z_ABS."""
    return synthetic_quasar(
        n, z_abs=Z_ABS, ew2796_rest=1.0, snr=snr, absorber_fwhm_kms=60, seed=seed
    )


def _array_columns(row: dict[str, tuple[np.ndarray, str]]) -> list[fits.Column]:
    cols = []
    for name, (a, unit) in row.items():
        a = np.asarray(a)
        fmt = {"f": "D" if a.dtype == np.float64 else "E", "i": "J", "u": "J"}[a.dtype.kind]
        cols.append(fits.Column(name=name, format=f"{a.size}{fmt}", unit=unit or None,
                                array=a[None, :]))  # fmt: skip
    return cols


def write_eso_sdp(
    path: Path, wave: np.ndarray, flux: np.ndarray, err: np.ndarray, *,
    qual: npt.ArrayLike | None = None, continuum: np.ndarray | None = None,
    unit: str = "Angstrom", air: bool = False, header: Mapping[str, object] | None = None,
    err_name: str = "ERR", instrument: str = "UVES",
) -> Path:  # fmt: skip
    """ESO Phase 3 SDP 1D: header-only primary, one-row BINTABLE of array columns."""
    row = {"WAVE": (wave, unit), "FLUX": (flux, "erg/(s cm2 Angstrom)"),
           err_name: (err, "erg/(s cm2 Angstrom)")}  # fmt: skip
    if qual is not None:
        row["QUAL"] = (np.asarray(qual, np.int32), "")
    if continuum is not None:
        row["CONTINUUM"] = (continuum, "erg/(s cm2 Angstrom)")
    table = fits.BinTableHDU.from_columns(_array_columns(row), name="SPECTRUM")
    table.header["TUCD1"] = "em.wl;obs.atmos" if air else "em.wl"
    table.header["VOCLASS"] = "SPECTRUM v1.0"
    primary = fits.PrimaryHDU()
    primary.header.update({"PRODCATG": "SCIENCE.SPECTRUM", "INSTRUME": instrument,
                           "OBJECT": "QSO J0000-0000", "RA": 150.25, "DEC": -2.5,
                           **(header or {})})  # fmt: skip
    fits.HDUList([primary, table]).writeto(path, overwrite=True)
    return path


def write_4most(path: Path, wave: np.ndarray, flux: np.ndarray, err: np.ndarray, *,
                qual: npt.ArrayLike | None = None, unit: str = "Angstrom",
                header: Mapping[str, object] | None = None) -> Path:  # fmt: skip
    """4MOST L1 (the assumed layout of docs/io.md): like ESO SDP with ERR_FLUX, INSTRUME 4MOST."""
    hdr = {"OBJECT": "4MOST-QSO-1", "PRODCATG": "SCIENCE.SPECTRUM", **(header or {})}
    return write_eso_sdp(path, wave, flux, err, qual=qual, unit=unit, header=hdr,
                         err_name="ERR_FLUX", instrument="4MOST")  # fmt: skip


def write_sdss(path: Path, wave: np.ndarray, flux: np.ndarray, ivar: np.ndarray,
               and_mask: np.ndarray, plate: int = 1234, mjd: int = 56789,
               fiber: int = 42) -> Path:  # fmt: skip
    cols = [
        fits.Column(name="flux", format="E", array=flux),
        fits.Column(name="loglam", format="E", array=np.log10(wave)),
        fits.Column(name="ivar", format="E", array=ivar),
        fits.Column(name="and_mask", format="J", array=and_mask),
        fits.Column(name="or_mask", format="J", array=and_mask),
    ]
    primary = fits.PrimaryHDU()
    primary.header.update({"PLUG_RA": 210.5, "PLUG_DEC": 12.25, "PLATEID": plate, "MJD": mjd,
                           "FIBERID": fiber})  # fmt: skip
    coadd = fits.BinTableHDU.from_columns(cols, name="COADD")
    fits.HDUList([primary, coadd]).writeto(path, overwrite=True)
    return path


def write_desi(
    path: Path,
    cameras: Mapping[str, tuple[npt.ArrayLike, npt.ArrayLike, npt.ArrayLike, npt.ArrayLike]],
    targetid: npt.ArrayLike,
    ra: npt.ArrayLike,
    dec: npt.ArrayLike,
) -> Path:
    """cameras: {"B": (wave, flux (N, n), ivar, mask), ...}."""
    fm = fits.BinTableHDU.from_columns(
        [fits.Column(name="TARGETID", format="K", array=np.asarray(targetid)),
         fits.Column(name="TARGET_RA", format="D", array=np.asarray(ra)),
         fits.Column(name="TARGET_DEC", format="D", array=np.asarray(dec))],
        name="FIBERMAP",
    )  # fmt: skip
    hdus = [fits.PrimaryHDU(), fm]
    for cam, (w, f, iv, m) in cameras.items():
        hdus += [
            fits.ImageHDU(np.asarray(w, np.float64), name=f"{cam}_WAVELENGTH"),
            fits.ImageHDU(np.asarray(f, np.float32), name=f"{cam}_FLUX"),
            fits.ImageHDU(np.asarray(iv, np.float32), name=f"{cam}_IVAR"),
            fits.ImageHDU(np.asarray(m, np.int32), name=f"{cam}_MASK"),
        ]
    fits.HDUList(hdus).writeto(path, overwrite=True)
    return path


def write_4most_arms(directory: Path, stem: str, wave: np.ndarray, flux: np.ndarray,
                     err: np.ndarray, *, header: Mapping[str, object] | None = None,
                     arms: Collection[str] = ("blue", "green", "red"), arm_keyword: bool = True,
                     pattern: str = "{stem}_{arm}.fits") -> list[Path]:  # fmt: skip
    """Per-arm 4MOST L1 files of one spectrum: ``pattern`` (default ``stem_ARM.fits``) for each
    of ``arms``, each the pixels of ``wave`` inside that arm (with ``ARM`` in the header unless
    not ``arm_keyword``)."""
    from mgfast import grid

    out = []
    for arm in grid.ARMS:
        if arm.name not in arms:
            continue
        keep = (wave >= arm.lo) & (wave <= arm.hi)
        hdr = {**(header or {}), **({"ARM": arm.name.upper()} if arm_keyword else {})}
        path = directory / pattern.format(stem=stem, arm=arm.name)
        out.append(write_4most(path, wave[keep], flux[keep], err[keep], header=hdr))
    return out
