"""SDSS and BOSS spec-PLATE-MJD-FIBER.fits files (DR8 and later).

Layout: primary HDU header with PLUG_RA, PLUG_DEC (deg), PLATEID, MJD, FIBERID; HDU 1 'COADD', a
BINTABLE with one row per pixel: loglam (log10 of the vacuum wavelength in Å), flux
(1e-17 erg/s/cm²/Å), ivar, and_mask (non-zero = bad). R ≈ 2000 (1500-2500 across the range):
read only with allow_low_resolution=True.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .fitsutil import check_inside_file, columns, hdu_by_name, read_table, require
from .spectrum import (
    ReadError,
    Spectrum,
    as_vacuum_angstrom,
    check_pixels,
    check_resolution,
    header_float,
    header_str,
    real_1d,
    stem,
)

RESOLUTION = 2000.0


def read_sdss(f: Any, path: str, allow_low_resolution: bool = False) -> list[Spectrum]:
    """Read the coadded spectrum of an SDSS/BOSS spec file."""
    hdu = hdu_by_name(f, "COADD", path)
    where = f"{path}[COADD]"
    check_resolution(RESOLUTION, "SDSS/BOSS", allow_low_resolution, where)
    check_inside_file(hdu, path)
    cols = columns(hdu)
    need = {k: require(cols, where, k) for k in ("LOGLAM", "FLUX", "IVAR", "AND_MASK")}
    names = {k: c.name for k, c in need.items()}
    n = hdu.get_nrows()
    check_pixels(n, where)
    if n < 2:
        raise ReadError(f"{where}: {n} pixels; expected a spectrum")
    t = read_table(hdu, list(need.values()), where)
    loglam = real_1d(t[names["LOGLAM"]], n, "loglam", where, np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        wave = as_vacuum_angstrom(10.0**loglam, "Angstrom", False, where)
    m = np.asarray(t[names["AND_MASK"]])
    if m.dtype.kind not in "iub":
        raise ReadError(f"{where}: and_mask holds {m.dtype}, expected integers")
    hdr0 = f[0].read_header()
    plate = header_float(hdr0, "PLATEID", "PLATE")
    mjd, fiber = header_float(hdr0, "MJD"), header_float(hdr0, "FIBERID")
    if all(np.isfinite([plate, mjd, fiber])):
        sid = f"{int(plate):04d}-{int(mjd):05d}-{int(fiber):04d}"
    else:
        sid = header_str(hdr0, "OBJECT") or stem(path)
    meta = {
        "ra": header_float(hdr0, "PLUG_RA", "RA"),
        "dec": header_float(hdr0, "PLUG_DEC", "DEC"),
        "format": "sdss",
        "hdu": hdu.get_extnum(),
        "index": 0,
    }
    z = _pipeline_z(f, path)
    if z is not None:
        meta["z_em"] = z
    return [
        Spectrum(
            wave=wave,
            flux=real_1d(t[names["FLUX"]], n, "flux", where),
            ivar=real_1d(t[names["IVAR"]], n, "ivar", where),
            mask=np.ascontiguousarray(m != 0, dtype=np.uint32),
            id=sid,
            resolution=RESOLUTION,
            meta=meta,
        )
    ]


def _pipeline_z(f: Any, path: str) -> float | None:
    """The SDSS pipeline's redshift (HDU SPECOBJ, column Z) when the file has it and it is a
    plausible quasar redshift (finite, >= 0); None otherwise."""
    try:
        if "SPECOBJ" not in f:
            return None
        h = f["SPECOBJ"]
        z_col = columns(h).get("Z") if h.get_exttype() == "BINARY_TBL" else None
        if z_col is None or h.get_nrows() < 1:
            return None
        check_inside_file(h, path)
        t = read_table(h, [z_col], "SPECOBJ", rows=[0])
        z = float(np.asarray(t[z_col.name]).reshape(-1)[0])
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return None
    return z if np.isfinite(z) and z >= 0 else None


__all__ = ["RESOLUTION", "read_sdss"]
