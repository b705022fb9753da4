"""Which reader a file needs: the format is detected from the file's headers (or its extension for
NumPy files) and can be given explicitly; ``read`` dispatches to the reader.

The readers' contract holds here: whatever a reader or the library under it (fitsio, cfitsio,
NumPy, h5py) raises for a file, ``read`` and ``detect_format`` raise ``ReadError`` with the path
and a reason (the original exception chained as its cause). KeyboardInterrupt, SystemExit and
warnings turned into errors are not wrapped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .desi import is_desi, read_desi
from .eso_sdp import read_eso_sdp
from .fitsutil import clear_cfitsio_errors, one_line, open_fits, past_stale_cfitsio_errors
from .fourmost import read_4most
from .generic import read_fits_table, read_numpy
from .mgfast_hdf5 import is_hdf5, read_mgfast_hdf5
from .sdss import read_sdss
from .spectrum import ReadError, Spectrum

# Each reader checks the file's headers when called and gives its spectra as an iterable: the
# table readers (4most, eso-sdp, fits-table) read one row at a time as it is consumed.
FITS_READERS: dict[str, Callable[[Any, str, bool], Iterable[Spectrum]]] = {
    "4most": read_4most,
    "eso-sdp": read_eso_sdp,
    "sdss": read_sdss,
    "desi": read_desi,
    "fits-table": read_fits_table,
}
FORMATS: tuple[str, ...] = (*FITS_READERS, "numpy", "mgfast-hdf5")
LOW_RESOLUTION_FORMATS: tuple[str, ...] = ("sdss", "desi")
NUMPY_SUFFIXES = (".npz", ".npy")
HDF5_SUFFIXES = (".h5", ".hdf5")


def _fits_format(f: Any) -> str:
    if is_desi(f):
        return "desi"
    coadd = f["COADD"] if "COADD" in f else None
    if (
        coadd is not None
        and coadd.get_exttype() == "BINARY_TBL"
        and "LOGLAM" in {c.upper() for c in coadd.get_colnames()}
    ):
        return "sdss"
    hdr0 = f[0].read_header()
    table = next((h for h in list(f)[1:] if h.get_exttype() == "BINARY_TBL"), None)
    names = {c.upper() for c in table.get_colnames()} if table is not None else set()
    if "4MOST" in str(hdr0.get("INSTRUME", "")).upper() or {"WAVE", "FLUX", "ERR_FLUX"} <= names:
        return "4most"
    sdp = str(hdr0.get("PRODCATG", "")).upper().startswith("SCIENCE.SPECTRUM")
    if sdp or {"WAVE", "FLUX", "ERR"} <= names:
        return "eso-sdp"
    return "fits-table"


def _reason(e: BaseException) -> str:
    """What an exception from a library says about a file, in one line."""
    msg = one_line(e)
    if isinstance(e, UnicodeDecodeError):
        return (
            "bytes that are not ASCII where FITS wants text (a header card or a string "
            "column): a corrupt file"
        )
    if isinstance(e, MemoryError):
        return f"its sizes ask for more memory than there is (corrupt?) (MemoryError: {msg})"
    if isinstance(e, OSError):
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        return f"corrupt or truncated ({type(e).__name__}: {one_line(first)})"
    return f"cannot be read, corrupt? ({type(e).__name__}: {msg})"


@contextmanager
def read_errors(path: str) -> Iterator[None]:
    """Every exception of the block as a ReadError for ``path`` (chained ``from`` the original),
    except KeyboardInterrupt, SystemExit and the like (not Exceptions) and warnings raised as
    errors; a ReadError gets its ``path`` and ``reason`` set."""
    try:
        yield
    except ReadError as e:
        e.attach(path)
        raise
    except Warning:
        raise
    except Exception as e:
        reason = _reason(e)
        raise ReadError(f"{path}: {reason}", path=path, reason=reason) from e
    finally:  # whatever a corrupt file left on cfitsio's error stack goes with it
        clear_cfitsio_errors()


def detect_format(path: str | Path) -> str:
    """The format of a file: one of FORMATS. Raises ReadError if it is not a spectrum file."""
    p = str(path)
    if p.lower().endswith(NUMPY_SUFFIXES):
        return "numpy"
    with read_errors(p):
        if p.lower().endswith(HDF5_SUFFIXES) or is_hdf5(p):
            return "mgfast-hdf5"

        def fits_format() -> str:
            with open_fits(p) as f:
                return _fits_format(f)

        return past_stale_cfitsio_errors(fits_format)


def read(
    path: str | Path, format: str | None = None, *, allow_low_resolution: bool = False
) -> list[Spectrum]:
    """Read every spectrum in a file.

    Parameters
    ----------
    path : a FITS file (4MOST L1, ESO SDP, SDSS/BOSS spec, DESI coadd, generic table) or a NumPy
        .npz/.npy file
    format : one of FORMATS; default: detected from the file
    allow_low_resolution : read spectra far coarser than R = 20000 (SDSS, DESI) with a warning
        instead of raising LowResolutionError
    """
    p = str(path)
    if format is not None and format not in FORMATS:
        raise ValueError(f"format: expected one of {', '.join(FORMATS)}, got {format!r}")
    with read_errors(p):
        return _read(p, format, allow_low_resolution)


def _read(p: str, format: str | None, allow_low_resolution: bool) -> list[Spectrum]:
    if not Path(p).is_file():
        raise ReadError(f"{p}: no such file")
    if format == "numpy" or (format is None and p.lower().endswith(NUMPY_SUFFIXES)):
        return read_numpy(p, allow_low_resolution)
    if format == "mgfast-hdf5" or (format is None and (
        p.lower().endswith(HDF5_SUFFIXES) or is_hdf5(p)
    )):  # fmt: skip
        return read_mgfast_hdf5(p, allow_low_resolution)

    def read_fits() -> list[Spectrum]:
        with open_fits(p) as f:
            return list(FITS_READERS[format or _fits_format(f)](f, p, allow_low_resolution))

    spectra = past_stale_cfitsio_errors(read_fits)
    if not spectra:
        raise ReadError(f"{p}: no spectra in the file")
    return spectra


def iter_read(
    path: str | Path, format: str | None = None, *, allow_low_resolution: bool = False,
    chunk: int = 512, start: int = 0,
) -> Iterator[list[Spectrum]]:  # fmt: skip
    """The spectra of a file in lists of at most ``chunk``, in order, read as they are consumed:
    a table file (4MOST L1, ESO SDP, generic FITS tables) is read row by row with the file held
    open, so a file of any size costs the memory of one chunk. Other formats (SDSS, DESI,
    NumPy, mgfast HDF5) are read whole first, then handed out in chunks. Failures are
    ReadErrors as with ``read``, raised where they happen (after the chunks before them).
    ``start``: the first spectrum to give (a resumed run's place inside the file: table files
    do not read the rows before it)."""
    p = str(path)
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise ValueError(f"chunk: expected a positive integer, got {chunk!r}")
    if isinstance(start, bool) or not isinstance(start, int) or start < 0:
        raise ValueError(f"start: expected an integer >= 0, got {start!r}")
    if format is not None and format not in FORMATS:
        raise ValueError(f"format: expected one of {', '.join(FORMATS)}, got {format!r}")
    lazy_formats = ("4most", "eso-sdp", "fits-table")
    with read_errors(p):
        if not Path(p).is_file():
            raise ReadError(f"{p}: no such file")
        fits = not (
            format in ("numpy", "mgfast-hdf5")
            or (format is None and p.lower().endswith(NUMPY_SUFFIXES + HDF5_SUFFIXES))
            or (format is None and is_hdf5(p))
        )
        if fits:
            fmt = format or detect_format(p)
            fits = fmt in lazy_formats
    if not fits:
        spectra = read(p, format, allow_low_resolution=allow_low_resolution)[start:]
        for i in range(0, len(spectra), chunk):
            yield spectra[i : i + chunk]
        return
    with read_errors(p), open_fits(p) as f:
        rows = iter(past_stale_cfitsio_errors(
            lambda: FITS_READERS[fmt](f, p, allow_low_resolution, start)  # type: ignore[call-arg]
        ))  # fmt: skip
        n = 0
        while True:
            part = [s for _, s in zip(range(chunk), rows, strict=False)]
            if not part:
                break
            n += len(part)
            yield part
        if n == 0 and start == 0:
            raise ReadError(f"{p}: no spectra in the file")


__all__ = [
    "FORMATS",
    "LOW_RESOLUTION_FORMATS",
    "detect_format",
    "iter_read",
    "read",
    "read_errors",
]
