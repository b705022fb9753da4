"""fitsio helpers the FITS readers share: open a file, find columns by name (any case) with their
units and UCDs, and read a column only after checking the HDU's data lies inside the file."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from .spectrum import ReadError, check_pixels

AIR_UCD = "em.wl;obs.atmos"  # ESO SDP: wavelengths in air (vacuum: plain em.wl)


def fitsio_module() -> Any:
    try:
        import fitsio
    except ImportError as e:  # a runtime dependency; only a broken install lacks it
        raise RuntimeError("mgfast's FITS readers need fitsio: pip install fitsio") from e
    return fitsio


T = TypeVar("T")


def past_stale_cfitsio_errors(fn: Callable[[], T]) -> T:
    """fn(), made once more if it fails with UnicodeDecodeError. cfitsio keeps its error messages
    on a process-wide stack, and a corrupt file (a header card that is not ASCII, say) can leave
    bytes there that fitsio cannot decode: fitsio's next error report, even one it expects and
    handles itself (the end of the HDU list, met whenever a file is written), then raises
    UnicodeDecodeError, in whatever file comes next. That failed report empties the stack, so
    the second call sees only its own errors. Without this, one corrupt input could make a run
    lose its catalogue or report a good file as unreadable."""
    try:
        return fn()
    except UnicodeDecodeError:
        return fn()


def open_fits(path: str) -> Any:
    fitsio = fitsio_module()
    try:
        return past_stale_cfitsio_errors(lambda: fitsio.FITS(path, "r"))
    except OSError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ReadError(f"{path}: not a readable FITS file ({one_line(first)})") from None


def one_line(e: BaseException | str) -> str:
    s = " ".join(str(e).split())
    return s if len(s) <= 300 else s[:297] + "..."


def check_inside_file(hdu: Any, path: str) -> None:
    """Refuse an HDU whose data would run past the end of the file (truncated, or a corrupt
    header asking for more memory than the file holds)."""
    if path.lower().endswith((".gz", ".fz", ".bz2")):
        return  # compressed: cfitsio checks while it inflates
    end = int(hdu._info.get("data_end", 0))
    size = os.path.getsize(path)
    if end > size:
        raise ReadError(
            f"{path}: HDU {hdu.get_extnum()} is truncated (data ends at byte {end:,}, the file "
            f"has {size:,})"
        )


@dataclass(frozen=True)
class Column:
    name: str  # as in the file
    unit: str
    ucd: str
    repeat: int


def columns(hdu: Any) -> dict[str, Column]:
    """The table's columns by upper-case name."""
    hdr = hdu.read_header()
    out = {}
    for i, info in enumerate(hdu._info.get("colinfo", []), start=1):
        name = str(info["name"])
        out[name.upper()] = Column(
            name=name,
            unit=str(hdr.get(f"TUNIT{i}", "") or "").strip(),
            ucd=str(hdr.get(f"TUCD{i}", "") or "").strip(),
            repeat=int(info.get("repeat", 1)),
        )
    return out


def find(cols: dict[str, Column], *names: str) -> Column | None:
    for n in names:
        if n.upper() in cols:
            return cols[n.upper()]
    return None


def require(cols: dict[str, Column], where: str, *names: str) -> Column:
    c = find(cols, *names)
    if c is None:
        have = ", ".join(cols) or "none"
        raise ReadError(f"{where}: no {' or '.join(names)} column (the table has {have})")
    return c


def read_cell(hdu: Any, col: Column, row: int, where: str) -> np.ndarray:
    """One row of an array column as a 1D array (variable-length arrays too)."""
    check_pixels(col.repeat, f"{where} column {col.name}")
    v = hdu.read_column(col.name, rows=[row])
    v = v[0]
    return np.asarray(v).reshape(-1)


def read_image(hdu: Any, where: str) -> np.ndarray:
    dims = hdu._info.get("dims", [])
    if hdu.get_exttype() != "IMAGE_HDU" or not dims:
        raise ReadError(f"{where}: expected an image HDU with data")
    if int(np.prod(dims)) > 50 * 1_000_000:
        raise ReadError(f"{where}: image of shape {dims} is too large for a spectrum HDU")
    return np.asarray(hdu.read())


def hdu_by_name(f: Any, name: str, where: str) -> Any:
    if name not in f:
        raise ReadError(f"{where}: no HDU named {name}")
    return f[name]


__all__ = ["AIR_UCD", "Column", "columns", "find", "open_fits", "read_cell", "require"]
