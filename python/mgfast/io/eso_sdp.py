"""ESO Phase 3 science data product (SDP) 1D spectra, and the row-per-spectrum table layout it
shares with 4MOST L1 and generic tables.

Layout (ESO SDP standard, 'SPECTRUM v1.0'): a primary HDU without data (OBJECT, RA, DEC,
SPEC_RES, PRODCATG = SCIENCE.SPECTRUM) and a one-row BINTABLE whose array columns are WAVE, FLUX,
ERR and optionally QUAL (0 = good) and CONTINUUM. WAVE's unit is TUNITn (Å or nm); it is in air
when its TUCDn is 'em.wl;obs.atmos', in vacuum otherwise. When CONTINUUM is given the flux is
divided by it (and marked normalised); pixels where it is not positive are masked.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from .fitsutil import (
    AIR_UCD,
    Column,
    check_inside_file,
    columns,
    find,
    read_cell,
    require,
)
from .spectrum import (
    ReadError,
    Spectrum,
    as_vacuum_angstrom,
    check_resolution,
    header_float,
    header_str,
    header_z_em,
    real_1d,
    stem,
)


def read_row_spectrum(
    hdu: Any,
    row: int,
    where: str,
    wave: Column,
    flux: Column,
    err: Column | None = None,
    ivar: Column | None = None,
    mask: Column | None = None,
    continuum: Column | None = None,
    *,
    air: bool | None = None,
    log10_wave: bool = False,
    drop_nan_wave: bool = False,
) -> dict[str, Any]:
    """Arrays of one row of a table whose columns hold whole spectra: the keyword arguments of
    ``Spectrum`` for wave, flux, err, ivar, mask and normalised."""
    w = read_cell(hdu, wave, row, where).astype(np.float64)
    if log10_wave:
        with np.errstate(over="ignore", invalid="ignore"):
            w = 10.0**w
    n = w.size
    cells = {}
    for key, col in (("flux", flux), ("err", err), ("ivar", ivar), ("continuum", continuum)):
        if col is not None:
            cells[key] = real_1d(read_cell(hdu, col, row, where), n, col.name, where)
    bad = None
    if mask is not None:
        m = np.asarray(read_cell(hdu, mask, row, where))
        if m.dtype.kind not in "iub" or m.size != n:
            raise ReadError(f"{where}: column {mask.name} must hold {n} integers, got {m.dtype}")
        bad = m != 0
    if drop_nan_wave:  # 4MOST joined files may pad the inter-arm gaps with NaN wavelengths
        keep = np.isfinite(w)
        if keep.sum() < 2:
            raise ReadError(f"{where}: column {wave.name} has no finite wavelengths (all NaN)")
        w = w[keep]
        cells = {k: v[keep] for k, v in cells.items()}
        bad = None if bad is None else bad[keep]
    is_air = air if air is not None else wave.ucd.lower() == AIR_UCD
    out: dict[str, Any] = {
        "wave": as_vacuum_angstrom(w, "" if log10_wave else wave.unit, is_air, where)
    }
    f = cells["flux"]
    e = cells.get("err")
    if "continuum" in cells:
        c = cells["continuum"]
        ok = np.isfinite(c) & (c > 0)
        c = np.where(ok, c, 1.0)
        f = f / c
        e = None if e is None else e / c
        bad = ~ok if bad is None else bad | ~ok
    out.update(flux=f, err=e, ivar=cells.get("ivar"), normalised="continuum" in cells)
    out["mask"] = None if bad is None else bad.astype(np.uint32)
    return out


def read_eso_sdp(
    f: Any, path: str, allow_low_resolution: bool = False, start: int = 0
) -> Iterator[Spectrum]:
    """Read an ESO Phase 3 SDP 1D spectrum (one spectrum per table row; SDP files have one).
    The headers are checked now; the rows are read as the iterator is consumed."""
    hdr0 = f[0].read_header()
    if len(f) < 2:
        raise ReadError(f"{path}: no spectrum table after the primary HDU")
    hdu = f[1]
    where = f"{path}[{hdu.get_extnum()}]"
    if hdu.get_exttype() != "BINARY_TBL":
        raise ReadError(f"{where}: expected a binary table (ESO SDP spectrum), got an image")
    check_inside_file(hdu, path)
    hdr1 = hdu.read_header()
    cols = columns(hdu)
    wave = require(cols, where, "WAVE")
    flux = require(cols, where, "FLUX")
    err = require(cols, where, "ERR")
    qual, cont = find(cols, "QUAL"), find(cols, "CONTINUUM")
    resolution = header_float(hdr0, "SPEC_RES")
    res = None if not np.isfinite(resolution) else resolution
    check_resolution(res, "ESO SDP", allow_low_resolution, where)
    nrows = hdu.get_nrows()
    if nrows < 1:
        raise ReadError(f"{where}: the spectrum table has no rows")
    name = header_str(hdr0, "OBJECT") or header_str(hdr1, "OBJECT") or stem(path)
    meta = {
        "ra": header_float(hdr0, "RA"),
        "dec": header_float(hdr0, "DEC"),
        "format": "eso-sdp",
        "hdu": hdu.get_extnum(),
        **header_z_em(hdr0, hdr1),
    }

    def rows() -> Iterator[Spectrum]:  # one row at a time: a big table is never held whole
        for row in range(start, nrows):
            arrays = read_row_spectrum(hdu, row, where, wave, flux, err, None, qual, cont)
            sid = name if nrows == 1 else f"{name}[{row}]"
            yield Spectrum(
                **arrays, id=sid, resolution=res, meta={**meta, "index": row, "row": row}
            )

    return rows()


__all__ = ["read_eso_sdp", "read_row_spectrum"]
