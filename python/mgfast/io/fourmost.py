"""4MOST L1 high-resolution spectra: per-arm files and joined files.

Assumed layout (the ESO Phase 3 SDP layout that 4MOST L1 products follow; docs/io.md): a primary
HDU with header keywords (INSTRUME = '4MOST', OBJECT or OBJ_NAME or OBJ_UID, RA, DEC, optional
SPEC_RES and ARM) and a BINTABLE (EXTNAME 'SPECTRUM' or the first table) with one row per spectrum
and array columns WAVE, FLUX, ERR_FLUX and optionally QUAL or MASK (non-zero = bad). WAVE is in Å
or nm (TUNITn), vacuum unless its TUCDn is 'em.wl;obs.atmos'. A per-arm file covers one arm
(blue, green or red); a joined file covers all three, with the gaps between arms either left out
(WAVE jumps), filled with NaN flux, masked by QUAL, or padded with NaN wavelengths (dropped here).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from .. import grid
from .eso_sdp import read_row_spectrum
from .fitsutil import check_inside_file, columns, find, require
from .spectrum import (
    ReadError,
    Spectrum,
    check_resolution,
    header_float,
    header_str,
    header_z_em,
    stem,
)

ERR_NAMES = ("ERR_FLUX", "ERR", "FLUX_ERR")


def spectrum_hdu(f: Any, path: str) -> Any:
    if "SPECTRUM" in f:
        return f["SPECTRUM"]
    for hdu in list(f)[1:]:
        if hdu.get_exttype() == "BINARY_TBL":
            return hdu
    raise ReadError(f"{path}: no binary table HDU with the spectrum")


def arm_name(wave: np.ndarray) -> str:
    """'blue', 'green', 'red' for a per-arm spectrum, 'joined' when it spans several arms."""
    arms = grid.arms_spanned(wave)
    return grid.ARMS[int(arms[0])].name if arms.size == 1 else "joined"


def read_4most(
    f: Any, path: str, allow_low_resolution: bool = False, start: int = 0
) -> Iterator[Spectrum]:
    """Read a 4MOST L1 per-arm or joined spectrum file (one spectrum per table row). The
    headers are checked now; the rows are read as the iterator is consumed."""
    hdr0 = f[0].read_header()
    hdu = spectrum_hdu(f, path)
    where = f"{path}[{hdu.get_extnum()}]"
    check_inside_file(hdu, path)
    cols = columns(hdu)
    wave = require(cols, where, "WAVE")
    flux = require(cols, where, "FLUX")
    err = require(cols, where, *ERR_NAMES)
    mask = find(cols, "QUAL", "MASK")
    resolution = header_float(hdr0, "SPEC_RES")
    res = None if not np.isfinite(resolution) else resolution
    check_resolution(res, "4MOST", allow_low_resolution, where)
    nrows = hdu.get_nrows()
    if nrows < 1:
        raise ReadError(f"{where}: the spectrum table has no rows")
    name = header_str(hdr0, "OBJ_NAME", "OBJECT", "OBJ_UID") or stem(path)
    meta = {
        "ra": header_float(hdr0, "RA"),
        "dec": header_float(hdr0, "DEC"),
        "format": "4most",
        "hdu": hdu.get_extnum(),
        **header_z_em(hdr0),
    }

    def rows() -> Iterator[Spectrum]:  # one row at a time: a big table is never held whole
        for row in range(start, nrows):
            arrays = read_row_spectrum(
                hdu, row, where, wave, flux, err, None, mask, drop_nan_wave=True
            )
            arm = header_str(hdr0, "ARM").lower() or arm_name(arrays["wave"])
            sid = name if nrows == 1 else f"{name}[{row}]"
            yield Spectrum(
                **arrays, id=sid, resolution=res, meta={**meta, "index": row, "arm": arm}
            )

    return rows()


__all__ = ["read_4most"]
