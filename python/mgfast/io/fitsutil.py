"""fitsio helpers the FITS readers share: open a file, find columns by name (any case) with their
units and UCDs, and read a column only after checking the HDU's data lies inside the file and,
for variable-length arrays, that every descriptor read points inside the heap."""

from __future__ import annotations

import functools
import gzip
import os
import re
import sys
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from .spectrum import MAX_PIXELS, ReadError, check_pixels

# A gzip-compressed FITS file is inflated in memory by cfitsio: refuse one that inflates to more.
MAX_INFLATED: int = 4 << 30
GZIP_MAGIC = b"\x1f\x8b"
# Other compressions cfitsio inflates itself (pkzip, Unix compress, pack, LZH): their inflated
# size is not checked here, and cfitsio's own errors become ReadError in mgfast.io.read.
OTHER_COMPRESSED_MAGIC = (b"PK\x03\x04", b"\x1f\x9d", b"\x1f\x1e", b"\x1f\xa0")

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


_NO_FILE = os.path.join(os.sep, "nonexistent-mgfast-dir", "clear-cfitsio-errors.fits")


def clear_cfitsio_errors() -> None:
    """Empty cfitsio's process-wide error-message stack. A corrupt file can leave messages
    there, bytes that are not ASCII among them, which the next fitsio call that reports an
    error (even one fitsio expects and handles itself, as when a file is written) then fails to
    decode: one corrupt input would break the caller's own FITS writing afterwards. Opening a
    file that does not exist makes fitsio read, and so empty, the whole stack."""
    if sys.modules.get("fitsio") is None:
        return
    try:
        sys.modules["fitsio"].FITS(_NO_FILE, "r")
    except Exception:  # the expected failure, or the stale bytes failing to decode: both empty it
        pass


def open_fits(path: str) -> Any:
    """The file opened with fitsio (variable-length arrays read as one array per row). A file
    that is not FITS (random bytes and header bytes that are not ASCII included) or a gzip stream
    that is truncated or corrupt is a ReadError."""
    fitsio = fitsio_module()
    logical_size(path)  # a compressed file: its whole stream checked before cfitsio inflates it
    opened: list[Any] = []  # fitsio.FITS, untyped

    def open_all() -> Any:
        opened.clear()
        f = fitsio.FITS(path, "r", vstorage="object")
        opened.append(f)
        f.update_hdu_list()  # every HDU's header parsed now (fitsio would on first use)
        return f

    try:
        return past_stale_cfitsio_errors(open_all)
    except OSError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ReadError(f"{path}: not a readable FITS file ({one_line(first)})") from None
    except UnicodeDecodeError:  # cfitsio quotes the bad card in its message: not ASCII
        if not opened:
            raise ReadError(
                f"{path}: not a FITS file (its first header holds bytes that are not ASCII)"
            ) from None
        opened[0].close()
        raise ReadError(
            f"{path}: a corrupt FITS file (a header after the first holds a card cfitsio cannot "
            "parse, with bytes that are not ASCII)"
        ) from None


def logical_size(path: str) -> int | None:
    """The size of the FITS stream cfitsio reads: the file's size, the inflated size of a gzip
    file (inflated once here, to check it: a truncated or corrupt stream, or one inflating to
    over MAX_INFLATED bytes, is a ReadError), None for other compressions."""
    st = os.stat(path)
    return _logical_size(path, st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _logical_size(path: str, size: int, mtime_ns: int) -> int | None:
    with open(path, "rb") as fh:
        magic = fh.read(4)
        if magic.startswith(OTHER_COMPRESSED_MAGIC):
            return None
        if not magic.startswith(GZIP_MAGIC):
            return size
        fh.seek(0)
        n = 0
        try:
            with gzip.GzipFile(fileobj=fh) as gz:
                while chunk := gz.read(1 << 20):
                    n += len(chunk)
                    if n > MAX_INFLATED:
                        raise ReadError(
                            f"{path}: the gzip stream inflates to over {MAX_INFLATED:,} bytes; "
                            "too large for a spectrum file (a corrupt or hostile file?)"
                        )
        except (OSError, EOFError, zlib.error) as e:
            raise ReadError(
                f"{path}: a truncated or corrupt gzip stream ({one_line(e) or type(e).__name__})"
            ) from None
    return n


def one_line(e: BaseException | str) -> str:
    s = " ".join(str(e).split())
    return s if len(s) <= 300 else s[:297] + "..."


def check_inside_file(hdu: Any, path: str) -> None:
    """Refuse an HDU whose data would run past the end of the file (truncated, or a corrupt
    header asking for more memory than the file holds)."""
    size = logical_size(path)  # a gzip file: its inflated size
    if size is None:
        return  # another compression: cfitsio checks while it inflates
    end = int(hdu._info.get("data_end", 0))
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
    vla: bool = False  # a variable-length array (TFORM P or Q): its length is per row
    offset: int | None = None  # byte offset in the row (None: the row layout did not parse)
    descriptor: int = 0  # a VLA's descriptor bytes in the row: 8 (P) or 16 (Q)
    elem_bytes: int = 0  # a VLA element's size in bytes (0 for bits)


# TFORMn of a binary table: repeat count, type, and for P/Q the element type and maximum.
_TFORM = re.compile(r"^\s*(\d*)\s*([LXBIJKAEDCMPQ])\s*([LXBIJKAEDCM]?)")
_TYPE_BYTES = {"L": 1, "B": 1, "I": 2, "J": 4, "K": 8, "A": 1, "E": 4, "D": 8, "C": 8, "M": 16,
               "P": 8, "Q": 16}  # fmt: skip


def _row_layout(hdr: Any, ncols: int) -> list[tuple[int, int, int]] | None:
    """(byte offset, VLA descriptor bytes or 0, VLA element bytes) of each column from the TFORMn
    keywords, or None if they do not parse or do not add up to the row length NAXIS1."""
    out = []
    at = 0
    for i in range(1, ncols + 1):
        m = _TFORM.match(str(hdr.get(f"TFORM{i}", "")).upper())
        if m is None:
            return None
        r = int(m.group(1)) if m.group(1) else 1
        t, elem = m.group(2), m.group(3)
        vla = t in "PQ"
        out.append((at, _TYPE_BYTES[t] if vla else 0, _TYPE_BYTES.get(elem, 0) if vla else 0))
        at += (r + 7) // 8 if t == "X" else r * _TYPE_BYTES[t]
    try:
        return out if at == int(hdr.get("NAXIS1", -1)) else None
    except (TypeError, ValueError):
        return None


def columns(hdu: Any) -> dict[str, Column]:
    """The table's columns by upper-case name."""
    hdr = hdu.read_header()
    info = hdu._info.get("colinfo", [])
    layout = _row_layout(hdr, len(info)) if info else None
    out = {}
    for i, c in enumerate(info, start=1):
        name = str(c["name"])
        at, desc, elem = layout[i - 1] if layout else (None, 0, 0)
        out[name.upper()] = Column(
            name=name,
            unit=str(hdr.get(f"TUNIT{i}", "") or "").strip(),
            ucd=str(hdr.get(f"TUCD{i}", "") or "").strip(),
            repeat=int(c.get("repeat", 1)),
            vla=desc > 0 or int(c.get("type", 0)) < 0,  # fitsio: a negative type is a VLA
            offset=at,
            descriptor=desc,
            elem_bytes=elem,
        )
    return out


def vla_lengths(hdu: Any, col: Column, rows: list[int] | None, where: str) -> np.ndarray:
    """The lengths of a variable-length array column's cells in ``rows`` (None: all), read from
    the descriptors, each checked to lie inside the heap and to hold at most MAX_PIXELS values,
    so that nothing is allocated for a corrupt one (fitsio would allocate what it says)."""
    hdr = hdu.read_header()
    what = f"{where} column {col.name}"
    try:
        naxis1, nrows = int(hdr["NAXIS1"]), int(hdr["NAXIS2"])
        heap = int(hdr.get("PCOUNT", 0)) - (int(hdr.get("THEAP", naxis1 * nrows)) - naxis1 * nrows)
    except (KeyError, TypeError, ValueError):
        raise ReadError(
            f"{what}: the table's NAXIS1, NAXIS2, PCOUNT or THEAP is not a number"
        ) from None
    if col.offset is None or col.descriptor == 0 or naxis1 <= 0:
        raise ReadError(f"{what}: a variable-length array in a table whose TFORMn do not add up "
                        f"to its row length NAXIS1 = {naxis1}")  # fmt: skip
    rows = list(range(nrows)) if rows is None else [int(r) for r in rows]
    if not rows:
        return np.zeros(0, np.int64)
    lo, hi = min(rows), max(rows)
    if lo < 0 or hi >= nrows or (hi - lo + 1) * naxis1 > 1 << 31:
        raise ReadError(f"{what}: rows {lo}-{hi} outside the table's {nrows}")
    buf = np.zeros((hi - lo + 1, naxis1), np.uint8)
    hdu._FITS.read_as_rec(hdu._ext + 1, lo + 1, hi + 1, buf)  # the rows' bytes, as stored
    dt = np.dtype(">u8") if col.descriptor == 16 else np.dtype(">u4")
    cells = buf[np.asarray(rows) - lo, col.offset : col.offset + 2 * dt.itemsize]
    desc = cells.copy().view(dt).reshape(-1, 2).astype(np.int64)
    count: np.ndarray = desc[:, 0]
    start: np.ndarray = desc[:, 1]
    size = count * max(col.elem_bytes, 1) if col.elem_bytes else (count + 7) // 8
    bad = (count > MAX_PIXELS) | (count < 0) | (start < 0) | (start > heap)
    bad |= start + np.where(bad, 0, size) > heap
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise ReadError(
            f"{what}: row {rows[k]}'s descriptor asks for {int(count[k]):,} values at heap byte "
            f"{int(start[k]):,}; the heap has {max(heap, 0):,} bytes (corrupt?)"
        )
    return count


def read_table(hdu: Any, cols: list[Column], where: str, rows: list[int] | None = None) -> Any:
    """Columns of a table as a record array (variable-length arrays as one array per row,
    their descriptors checked first)."""
    for c in cols:
        if c.vla:
            vla_lengths(hdu, c, rows, where)
    names = [c.name for c in cols]
    try:  # once more past a stale cfitsio error (past_stale_cfitsio_errors), then it is the data
        return past_stale_cfitsio_errors(lambda: hdu.read(columns=names, rows=rows,
                                                          vstorage="object"))  # fmt: skip
    except UnicodeDecodeError:
        raise ReadError(
            f"{where}: text that is not ASCII in column {', '.join(names)} (corrupt?)"
        ) from None


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
    """One row of an array column as a 1D array; a variable-length array's cell has the row's
    own length (its descriptor checked before anything is allocated)."""
    check_pixels(col.repeat, f"{where} column {col.name}")
    if col.vla:
        vla_lengths(hdu, col, [row], where)
    v = hdu.read_column(col.name, rows=[row], vstorage="object")
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


__all__ = [
    "AIR_UCD",
    "Column",
    "columns",
    "find",
    "logical_size",
    "open_fits",
    "read_cell",
    "read_table",
    "require",
    "vla_lengths",
]
