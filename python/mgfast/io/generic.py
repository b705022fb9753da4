"""Generic spectra: any FITS binary table with recognisable column names, and NumPy files.

FITS table: the first binary table whose columns include a wavelength (WAVE, WAVELENGTH, LAMBDA,
or LOGLAM = log10 Å) and FLUX, with optional errors (ERR, ERROR, SIGMA, ERR_FLUX, FLUX_ERR) or
IVAR, a mask (MASK, QUAL, QUALITY, AND_MASK; non-zero = bad) and per-row ID/RA/DEC. Either each row
holds a whole spectrum in array columns (many spectra per file), or each row is one pixel with
scalar columns (one spectrum). Units from TUNITn (no unit: Å); air when TUCDn is
'em.wl;obs.atmos' or the header says AIRORVAC = 'air'. Header OBJECT, RA, DEC, SPEC_RES are used
when present. Array columns may be variable-length arrays (TFORM P or Q): then each row's
spectrum has that row's own length.

NumPy: ``.npz`` with arrays ``wave`` (n,) or (N, n), ``flux`` (n,) or (N, n), optional ``err`` or
``ivar``, ``mask``, ``id``, ``ra``, ``dec``, and scalars ``resolution``, ``air`` (bool),
``normalised`` (bool), ``wave_unit`` (str, default Å); ``.npy`` with a (2, n), (3, n) or (4, n)
array of wave, flux, err, mask rows. Loaded with allow_pickle=False.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from .eso_sdp import read_row_spectrum
from .fitsutil import AIR_UCD, Column, check_inside_file, columns, find, one_line, read_table
from .spectrum import (
    MAX_PIXELS,
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

WAVE_NAMES = ("WAVE", "WAVELENGTH", "LAMBDA")
ERR_NAMES = ("ERR", "ERROR", "SIGMA", "ERR_FLUX", "FLUX_ERR")
MASK_NAMES = ("MASK", "QUAL", "QUALITY", "AND_MASK")
ID_NAMES = ("ID", "OBJID", "TARGETID", "NAME", "OBJECT")


def find_table(f: Any, path: str) -> Any:
    for hdu in list(f)[1:]:
        if hdu.get_exttype() != "BINARY_TBL":
            continue
        names = {n.upper() for n in hdu.get_colnames()}
        if "FLUX" in names and (names & {*WAVE_NAMES, "LOGLAM"}):
            return hdu
    raise ReadError(
        f"{path}: no binary table with a wavelength ({', '.join(WAVE_NAMES)} or LOGLAM) and a "
        "FLUX column; pass the file's format (--format) if it is a known one"
    )


def _is_air(wave: Column, *headers: Any) -> bool:
    if wave.ucd.lower() == AIR_UCD:
        return True
    return any(header_str(h, "AIRORVAC").lower() == "air" for h in headers)


def read_fits_table(
    f: Any, path: str, allow_low_resolution: bool = False, start: int = 0
) -> Iterable[Spectrum]:
    """Read spectra from the first suitable binary table of a FITS file."""
    hdu = find_table(f, path)
    where = f"{path}[{hdu.get_extnum()}]"
    check_inside_file(hdu, path)
    hdr0, hdr1 = f[0].read_header(), hdu.read_header()
    cols = columns(hdu)
    log10 = find(cols, *WAVE_NAMES) is None
    wave = find(cols, *WAVE_NAMES) or cols["LOGLAM"]
    flux = cols["FLUX"]
    err, ivar, mask = find(cols, *ERR_NAMES), find(cols, "IVAR"), find(cols, *MASK_NAMES)
    if err is not None and ivar is not None:
        ivar = None  # prefer the 1-sigma errors when a file carries both
    res = header_float(hdr1, "SPEC_RES", "RESOLUTION")
    res = header_float(hdr0, "SPEC_RES", "RESOLUTION") if not np.isfinite(res) else res
    resolution = float(res) if np.isfinite(res) else None
    check_resolution(resolution, "these", allow_low_resolution, where)
    air = _is_air(wave, hdr0, hdr1)
    nrows = hdu.get_nrows()
    if nrows < 1:
        raise ReadError(f"{where}: the table has no rows")
    name = header_str(hdr1, "OBJECT") or header_str(hdr0, "OBJECT") or stem(path)
    meta0 = {
        "ra": header_float(hdr1, "RA") if np.isfinite(header_float(hdr1, "RA"))
        else header_float(hdr0, "RA"),
        "dec": header_float(hdr1, "DEC") if np.isfinite(header_float(hdr1, "DEC"))
        else header_float(hdr0, "DEC"),
        "format": "fits-table", "hdu": hdu.get_extnum(),
    }  # fmt: skip
    id_col, ra_col, dec_col = find(cols, *ID_NAMES), find(cols, "RA"), find(cols, "DEC")
    if wave.repeat == 1 and not wave.vla:  # one pixel per row: the whole table is one spectrum
        check_pixels(nrows, where)
        t = read_table(hdu, [c for c in (wave, flux, err, ivar, mask) if c is not None], where)
        w = real_1d(t[wave.name], nrows, wave.name, where, np.float64)
        if log10:
            with np.errstate(over="ignore", invalid="ignore"):
                w = 10.0**w
        arrays: dict[str, Any] = {
            "wave": as_vacuum_angstrom(w, "" if log10 else wave.unit, air, where),
            "flux": real_1d(t[flux.name], nrows, flux.name, where),
        }
        for key, col in (("err", err), ("ivar", ivar)):
            if col is not None:
                arrays[key] = real_1d(t[col.name], nrows, col.name, where)
        if mask is not None:
            m = np.asarray(t[mask.name])
            if m.dtype.kind not in "iub":
                raise ReadError(f"{where}: column {mask.name} holds {m.dtype}, expected integers")
            arrays["mask"] = (m != 0).astype(np.uint32)
        one = Spectrum(**arrays, id=name, resolution=resolution, meta={**meta0, "index": 0})
        return [one][start:]
    extra = read_table(hdu, [c for c in (id_col, ra_col, dec_col) if c is not None], where) if (
        id_col or ra_col or dec_col
    ) else None  # fmt: skip

    def rows() -> Iterator[Spectrum]:  # one row at a time: a big table is never held whole
        for row in range(start, nrows):
            arrays = read_row_spectrum(
                hdu, row, where, wave, flux, err, ivar, mask, air=air, log10_wave=log10
            )
            meta = {**meta0, "index": row}
            sid = name if nrows == 1 else f"{name}[{row}]"
            if extra is not None:
                if id_col is not None:
                    v = extra[id_col.name][row]
                    sid = v.decode() if isinstance(v, bytes) else str(v).strip()
                for key, col in (("ra", ra_col), ("dec", dec_col)):
                    if col is not None:
                        meta[key] = float(np.asarray(extra[col.name][row]).reshape(-1)[0])
            yield Spectrum(**arrays, id=sid, resolution=resolution, meta=meta)

    return rows()


def _why(e: BaseException) -> str:
    return f"{type(e).__name__}: {one_line(e)}" if not isinstance(e, ValueError) else one_line(e)


def _npy_header(fh: Any) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype from a .npy header (NumPy's own parser; any failure is the caller's)."""
    version = np.lib.format.read_magic(fh)
    parse = {(1, 0): np.lib.format.read_array_header_1_0,
             (2, 0): np.lib.format.read_array_header_2_0}.get(version)  # fmt: skip
    if parse is None:
        raise ValueError(f".npy format version {version} (mgfast reads 1.0 and 2.0)")
    shape, _, dtype = parse(fh)
    return tuple(int(k) for k in shape), np.dtype(dtype)


def _npz_arrays(path: str) -> dict[str, np.ndarray]:
    # Sizes are checked from the archive's directory and each array's header before anything is
    # inflated or allocated: an array must fit in its member, the members in 16 · MAX_PIXELS
    # doubles.
    try:
        with zipfile.ZipFile(path) as z:
            infos = z.infolist()
            total = sum(i.file_size for i in infos)
            if total > 16 * MAX_PIXELS * 8:
                raise ReadError(f"{path}: {total:,} bytes uncompressed: too large for spectra")
            for i in (i for i in infos if i.filename.endswith(".npy")):
                with z.open(i) as fh:
                    try:
                        shape, dtype = _npy_header(fh)
                    except Exception as e:  # NumPy raises many kinds for a bad header
                        raise ReadError(f"{path}: {i.filename}: not a .npy array ({_why(e)})"
                                        ) from None  # fmt: skip
                need = int(np.prod(shape, dtype=object)) * dtype.itemsize
                if need > i.file_size or any(k < 0 for k in shape):
                    raise ReadError(f"{path}: {i.filename}: its header says shape {shape} of "
                                    f"{dtype} ({need:,} bytes) in a member of {i.file_size:,} "
                                    "bytes (corrupt?)")  # fmt: skip
    except ReadError:
        raise
    except Exception as e:  # zipfile: BadZipFile, OSError, EOFError, NotImplementedError, ...
        raise ReadError(f"{path}: not a readable .npz archive ({_why(e)})") from None
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except Exception as e:  # ValueError, OSError, EOFError, TokenError, zlib.error, ...
        raise ReadError(f"{path}: unreadable .npz ({_why(e)})") from None


def _row(per: dict[str, np.ndarray], key: str, i: int) -> np.ndarray | None:
    return np.ascontiguousarray(per[key][i], np.float32) if key in per else None


def read_numpy(path: str, allow_low_resolution: bool = False) -> list[Spectrum]:
    """Read spectra from a .npz archive or a .npy array (layouts in the module docstring)."""
    if path.lower().endswith(".npy"):
        try:  # memory-mapped: a header asking for more than the file holds fails here
            a = np.load(path, mmap_mode="r", allow_pickle=False)
        except Exception as e:  # ValueError, OSError, EOFError, TokenError, SyntaxError, ...
            raise ReadError(f"{path}: unreadable .npy ({_why(e)})") from None
        if a.ndim != 2 or a.shape[0] not in (2, 3, 4):
            raise ReadError(f"{path}: expected a (2-4, n) array of wave, flux[, err[, mask]], "
                            f"got shape {a.shape}")  # fmt: skip
        check_pixels(a.shape[1], path)
        a = np.array(a)
        d = dict(zip(("wave", "flux", "err", "mask"), a, strict=False))
    else:
        d = _npz_arrays(path)
    if "wave" not in d and "wavelength" in d:
        d["wave"] = d.pop("wavelength")
    for k in ("wave", "flux"):
        if k not in d:
            raise ReadError(f"{path}: no array named {k!r} (has {', '.join(d) or 'none'})")
    flux = np.asarray(d["flux"])
    if flux.dtype.kind not in "fiu" or flux.ndim not in (1, 2):
        raise ReadError(f"{path}: flux must be real numbers of shape (n,) or (N, n)")
    flux2 = np.atleast_2d(flux)
    n_spec, n = flux2.shape

    def scalar(key: str, default: Any) -> Any:
        v = d.get(key)
        if v is None:
            return default
        v = np.asarray(v)
        if v.ndim != 0:
            raise ReadError(f"{path}: {key!r} must be a scalar")
        return v.item()

    res = scalar("resolution", None)
    resolution = float(res) if res is not None else None
    check_resolution(resolution, "these", allow_low_resolution, path)
    air, normalised = bool(scalar("air", False)), bool(scalar("normalised", False))
    unit = str(scalar("wave_unit", ""))
    w = np.asarray(d["wave"])
    if w.dtype.kind not in "fiu" or w.shape not in ((n,), (n_spec, n)):
        raise ReadError(f"{path}: wave has shape {w.shape}, expected ({n},) or {flux2.shape}")
    per: dict[str, np.ndarray] = {}
    for key in ("err", "ivar", "mask"):
        if key in d:
            v = np.atleast_2d(np.asarray(d[key]))
            if v.shape != flux2.shape or v.dtype.kind not in ("iub" if key == "mask" else "fiu"):
                raise ReadError(f"{path}: {key} must match flux's shape {flux2.shape} "
                                f"with {'integers' if key == 'mask' else 'numbers'}")  # fmt: skip
            per[key] = v
    if "err" in per and "ivar" in per:
        raise ReadError(f"{path}: give err or ivar, not both")
    ids = np.atleast_1d(d["id"]).astype(str) if "id" in d else None
    if ids is not None and ids.shape != (n_spec,):
        raise ReadError(f"{path}: id has {ids.size} values for {n_spec} spectra")
    coords = {}
    for key in ("ra", "dec"):
        if key in d:
            v = np.atleast_1d(np.asarray(d[key], np.float64))
            coords[key] = v if v.size == n_spec else np.full(n_spec, np.nan)
    name = stem(path)
    w2 = np.broadcast_to(w, flux2.shape)
    waves: dict[int, np.ndarray] = {}
    out = []
    for i in range(n_spec):
        where = f"{path}[{i}]" if n_spec > 1 else path
        row = 0 if w.ndim == 1 else i  # one wavelength array for all, or one each
        if row not in waves:
            waves[row] = as_vacuum_angstrom(w2[i], unit, air, where)
        out.append(
            Spectrum(
                wave=waves[row],
                flux=np.ascontiguousarray(flux2[i], np.float32),
                err=_row(per, "err", i),
                ivar=_row(per, "ivar", i),
                mask=None if "mask" not in per else (per["mask"][i] != 0).astype(np.uint32),
                id=str(ids[i]) if ids is not None else (name if n_spec == 1 else f"{name}[{i}]"),
                resolution=resolution,
                normalised=normalised,
                meta={
                    "ra": float(coords["ra"][i]) if "ra" in coords else np.nan,
                    "dec": float(coords["dec"][i]) if "dec" in coords else np.nan,
                    "format": "numpy",
                    "index": i,
                },
            )
        )
    return out


__all__ = ["read_fits_table", "read_numpy"]
