"""The catalogue of a run over files: one row per spectrum, one error per unreadable file, the
run's provenance and, with a multi-absorber model, one row per absorber; written as FITS (fitsio:
HDUs 'CATALOG', 'ERRORS' and, for multi-absorber runs, 'ABSORBERS'), CSV (plus siblings
``*.errors.csv`` and ``*.absorbers.csv``) or Parquet (likewise), always through a temporary file
that is renamed into place, so a catalogue on disk is whole."""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .absorbers import decode_absorbers
from .detector import Detections
from .flags import DetectionFlag, SpectrumFlag

# Columns ahead of Detections.columns(): where each spectrum came from.
SOURCE_COLUMNS: tuple[str, ...] = ("id", "file", "index", "ra", "dec")
CATALOG_HDU = "CATALOG"
ERRORS_HDU = "ERRORS"
ABSORBERS_HDU = "ABSORBERS"
# The absorber rows of a file's (or a chunk's) results travel in the same column dict as its
# spectrum rows, under this prefix: one dict per file keeps journal chunks and dask results whole.
# Their `spectrum` column indexes the rows of that dict (of the catalogue, once concatenated).
ABSORBER_PREFIX = "absorbers/"
SUFFIXES = (".fits", ".csv", ".parquet")


@dataclass(frozen=True)
class FileError:
    """A file that gave no catalogue rows, and why (one line)."""

    file: str
    reason: str


@dataclass(frozen=True)
class Catalog:
    """Detections over files: ``columns`` (SOURCE_COLUMNS, then Detections.columns()), ``errors``
    (one per failed file) and ``meta`` (mgfast version, method, threshold, model SHA-256, ...).
    With a multi-absorber model, ``absorbers``: one row per absorber candidate (SOURCE_COLUMNS of
    its spectrum, then Detections.absorber_columns(), whose ``spectrum`` is the catalogue row);
    None for single-absorber models and the matched filter."""

    columns: dict[str, np.ndarray]
    errors: tuple[FileError, ...] = ()
    meta: dict[str, Any] = field(default_factory=dict)
    absorbers: dict[str, np.ndarray] | None = None

    def __len__(self) -> int:
        return int(self.columns["probability"].size)

    @property
    def probability(self) -> np.ndarray:
        return self.columns["probability"]

    @property
    def wavelength(self) -> np.ndarray:
        return self.columns["lambda2796"]

    @property
    def redshift(self) -> np.ndarray:
        return self.columns["z_abs"]

    @property
    def detected(self) -> np.ndarray:
        return self.columns["detected"]

    @property
    def partial(self) -> bool:
        """Whether some files failed."""
        return bool(self.errors)

    def to_table(self):  # type: ignore[no-untyped-def]
        """An astropy Table of the rows, with ``meta`` and the errors in ``meta['errors']``."""
        from astropy.table import Table

        meta = {**self.meta, "errors": [(e.file, e.reason) for e in self.errors]}
        return Table(dict(self.columns), meta=meta, units=units_of(self.columns))

    def absorber_table(self):  # type: ignore[no-untyped-def]
        """An astropy Table of the absorber rows (None without a multi-absorber model)."""
        from astropy.table import Table

        return None if self.absorbers is None else Table(dict(self.absorbers), meta=dict(self.meta))

    def write(self, path: str | Path) -> list[Path]:
        """Write the catalogue by extension (.fits, .csv, .parquet); returns the files written."""
        path = Path(path)
        if path.suffix == ".fits":
            _atomic(path, lambda tmp: _write_fits(self, tmp))
            return [path]
        if path.suffix not in (".csv", ".parquet"):
            raise ValueError(f"{path}: unknown catalogue format (use .fits, .csv or .parquet)")
        errors_path = errors_sibling(path)
        write = _write_csv if path.suffix == ".csv" else _write_parquet
        err_cols = {
            "file": np.array([e.file for e in self.errors], dtype=str),
            "reason": np.array([e.reason for e in self.errors], dtype=str),
        }
        _atomic(errors_path, lambda tmp: write(err_cols, self.meta, tmp))
        written = [path, errors_path]
        absorbers_path = absorbers_sibling(path)
        if self.absorbers is not None:
            absorbers = self.absorbers
            _atomic(absorbers_path, lambda tmp: write(absorbers, self.meta, tmp))
            written.append(absorbers_path)
        elif absorbers_path.exists():  # an earlier multi-absorber run's: not this catalogue's
            absorbers_path.unlink()
        _atomic(path, lambda tmp: write(self.columns, self.meta, tmp))
        return written


def errors_sibling(path: Path) -> Path:
    """Where the error table of a CSV or Parquet catalogue goes: cat.csv → cat.errors.csv."""
    return path.with_name(path.stem + ".errors" + path.suffix)


def absorbers_sibling(path: Path) -> Path:
    """Where the absorber table of a CSV or Parquet catalogue goes: cat.csv → cat.absorbers.csv."""
    return path.with_name(path.stem + ".absorbers" + path.suffix)


def _source_columns() -> dict[str, np.ndarray]:
    dtypes = {"id": str, "file": str, "index": np.int64, "ra": np.float64, "dec": np.float64}
    return {k: np.zeros(0, dtypes[k]) for k in SOURCE_COLUMNS}


def _proto(multi: bool) -> Detections:
    return Detections(
        probability=np.zeros(0, np.float32), wavelength=np.zeros(0), redshift=np.zeros(0),
        detected=np.zeros(0, bool), flags=np.zeros(0, np.uint32),
        masked_fraction=np.zeros(0, np.float32), snr=np.zeros(0, np.float32), threshold=0.0,
        method="",
        absorbers=decode_absorbers(np.zeros((0, 1)), np.zeros((0, 1, 6))) if multi else None,
        n_absorbers=np.zeros(0, np.int64) if multi else None,
    )  # fmt: skip


def empty_columns(multi: bool = False) -> dict[str, np.ndarray]:
    """The catalogue's rows, empty; with ``multi`` (a multi-absorber model) with n_absorbers."""
    return {**_source_columns(), **_proto(multi).columns()}


def empty_absorber_columns() -> dict[str, np.ndarray]:
    """The absorber table, empty: SOURCE_COLUMNS, then Detections.absorber_columns()."""
    cols = _proto(True).absorber_columns()
    assert cols is not None
    return {**_source_columns(), **cols}


def rows_for(
    det: Detections, ids: list[str], file: str, index: list[int], ra: list[float], dec: list[float]
) -> dict[str, np.ndarray]:
    """Catalogue columns for the detections of the spectra of one file; with a multi-absorber
    model also its absorber rows (keys prefixed ABSORBER_PREFIX; split_rows separates them)."""
    cols = {
        "id": np.array(ids, dtype=str),
        "file": np.full(len(ids), file),
        "index": np.asarray(index, np.int64),
        "ra": np.asarray(ra, np.float64),
        "dec": np.asarray(dec, np.float64),
        **det.columns(),
    }
    absorbers = det.absorber_columns()
    if absorbers is not None:
        at = absorbers["spectrum"]
        source = {k: cols[k][at] for k in SOURCE_COLUMNS}
        cols |= {ABSORBER_PREFIX + k: v for k, v in (source | absorbers).items()}
    return cols


def split_rows(
    cols: dict[str, np.ndarray],
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray] | None]:
    """(spectrum rows, absorber rows or None) of a column dict made by rows_for or concat."""
    n = len(ABSORBER_PREFIX)
    rows = {k: v for k, v in cols.items() if not k.startswith(ABSORBER_PREFIX)}
    absorbers = {k[n:]: v for k, v in cols.items() if k.startswith(ABSORBER_PREFIX)}
    return rows, (absorbers or None)


def _cat(base: np.ndarray, arrays: list[np.ndarray]) -> np.ndarray:
    c = np.concatenate([base, *arrays])
    return c if base.dtype.kind == "U" else c.astype(base.dtype)  # strings keep their width


def concat(parts: list[dict[str, np.ndarray]], multi: bool | None = None) -> dict[str, np.ndarray]:
    """Concatenate column dicts (in order) onto the catalogue's schema. ``multi`` (default: the
    parts say) adds n_absorbers and the absorber rows, whose ``spectrum`` is shifted to index the
    concatenated rows."""
    if multi is None:
        multi = any(ABSORBER_PREFIX + "spectrum" in p for p in parts)
    base = empty_columns(multi)
    out = {k: _cat(v, [p[k] for p in parts]) for k, v in base.items()}
    if multi:
        start = np.cumsum([0, *(len(p["probability"]) for p in parts)])
        for k, v in empty_absorber_columns().items():
            key = ABSORBER_PREFIX + k
            arrays = [
                p[key] + s if k == "spectrum" else p[key]
                for p, s in zip(parts, start[:-1], strict=True)
            ]
            out[key] = _cat(v, arrays)
    return out


def flag_comments() -> list[str]:
    bits = [*SpectrumFlag, *DetectionFlag]
    return [f"flags bit {int(b).bit_length() - 1}: {b.name}" for b in bits]


def _atomic(path: Path, write: Any) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _ascii(a: np.ndarray) -> np.ndarray:
    """FITS strings are ASCII: non-ASCII characters become backslash escapes."""
    b = [s.encode("ascii", "backslashreplace") for s in a.tolist()]
    width = max([1, *(len(s) for s in b)])
    return np.array(b, dtype=f"S{width}")


# Physical units of the catalogue's columns (FITS TUNITn, astropy Table units); the others have
# none (probabilities, flags, counts, redshifts, SNR).
_ANGSTROM = (
    "lambda2796", "lambda2796_err", "ew2796", "ew2796_err", "ew2803", "ew2803_err",
    "ew2796_measured", "ew2796_measured_err", "ew2803_measured", "ew2803_measured_err",
)  # fmt: skip
COLUMN_UNITS: dict[str, str] = {"ra": "deg", "dec": "deg", **dict.fromkeys(_ANGSTROM, "Angstrom")}


def units_of(cols: dict[str, np.ndarray]) -> dict[str, str]:
    """The units of those of ``cols`` that have one (COLUMN_UNITS)."""
    return {k: COLUMN_UNITS[k] for k in cols if k in COLUMN_UNITS}


def _structured(cols: dict[str, np.ndarray]) -> np.ndarray:
    conv = {k: _ascii(v) if v.dtype.kind == "U" else v for k, v in cols.items()}
    n = len(next(iter(conv.values())))
    out = np.zeros(n, dtype=[(k.upper(), v.dtype) for k, v in conv.items()])
    for k, v in conv.items():
        out[k.upper()] = v
    return out


def _write_fits(cat: Catalog, path: Path) -> None:
    from .io.fitsutil import past_stale_cfitsio_errors

    past_stale_cfitsio_errors(lambda: _write_fits_once(cat, path))


def _write_fits_once(cat: Catalog, path: Path) -> None:
    import fitsio

    m = cat.meta
    header = [
        {"name": "MGFAST", "value": str(m.get("mgfast_version", "")), "comment": "mgfast version"},
        {"name": "METHOD", "value": str(m.get("method", "")), "comment": "network or filter"},
        {"name": "THRESH", "value": float(m.get("threshold", np.nan)),
         "comment": "spectrum detection threshold"},
        {"name": "MODELSHA", "value": str(m.get("model_sha256", "")),
         "comment": "SHA-256 of model.onnx"},
        {"name": "DATE", "value": str(m.get("date", "")), "comment": "UTC time of the run"},
        {"name": "NSPEC", "value": len(cat), "comment": "catalogue rows (spectra)"},
        {"name": "NFILES", "value": int(m.get("n_files", 0)), "comment": "input files"},
        {"name": "NERRORS", "value": len(cat.errors), "comment": "files that failed"},
        {"name": "CMDLINE", "value": str(m.get("command", "")), "comment": "command line"},
    ]  # fmt: skip
    if m.get("absorber_threshold") is not None:  # multi-absorber models
        header.insert(3, {"name": "ABSTHRSH", "value": float(m["absorber_threshold"]),
                          "comment": "absorber threshold"})  # fmt: skip
    header += [{"name": "COMMENT", "value": c} for c in flag_comments()]
    errs = {
        "file": np.array([e.file for e in cat.errors], dtype=str),
        "reason": np.array([e.reason for e in cat.errors], dtype=str),
    }

    def units(cols: dict[str, np.ndarray]) -> list[str]:
        return [COLUMN_UNITS.get(k, "") for k in cols]

    with fitsio.FITS(str(path), "rw", clobber=True) as f:
        f.write(_structured(cat.columns), extname=CATALOG_HDU, header=header,
                units=units(cat.columns))  # fmt: skip
        f.write(_structured(errs), extname=ERRORS_HDU)
        if cat.absorbers is not None:
            n_det = int(np.count_nonzero(cat.absorbers["detected"]))
            f.write(_structured(cat.absorbers), extname=ABSORBERS_HDU, units=units(cat.absorbers),
                    header=[
                        {"name": "NABS", "value": len(cat.absorbers["spectrum"]),
                         "comment": "absorber candidates (rows)"},
                        {"name": "NABSDET", "value": n_det,
                         "comment": "of them probability >= ABSTHRSH"},
                    ])  # fmt: skip


def _write_csv(cols: dict[str, np.ndarray], meta: dict[str, Any], path: Path) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        fh.write("# " + json.dumps(meta, sort_keys=True) + "\n")
        w = csv.writer(fh)
        w.writerow(list(cols))
        lists = [c.tolist() for c in cols.values()]
        for row in zip(*lists, strict=True):
            w.writerow([repr(v) if isinstance(v, float) else v for v in row])


def _write_parquet(cols: dict[str, np.ndarray], meta: dict[str, Any], path: Path) -> None:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise RuntimeError(
            f"{path}: writing Parquet needs pyarrow (pip install pyarrow), or use .fits or .csv"
        ) from None
    table = pa.table(dict(cols))
    table = table.replace_schema_metadata({"mgfast": json.dumps(meta, sort_keys=True)})
    pq.write_table(table, str(path))


def _typed(raw: dict[str, np.ndarray], base: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Columns read back (FITS, CSV text or Parquet), onto the schema of ``base``."""
    cols = {}
    for k, v in base.items():
        c = np.asarray(raw.get(k, raw.get(k.upper(), v)))
        if v.dtype.kind == "U":  # fitsio gives str or bytes, by version
            cols[k] = np.char.decode(c) if c.dtype.kind == "S" else c.astype(str)
        elif v.dtype.kind == "b" and c.dtype.kind in "SU":  # CSV: True/False
            cols[k] = np.asarray(c == "True", bool)
        else:
            cols[k] = c.astype(v.dtype)
    return cols


def _errors(file: np.ndarray, reason: np.ndarray) -> tuple[FileError, ...]:
    def text(x: Any) -> str:
        return x.decode() if isinstance(x, bytes) else str(x)

    return tuple(FileError(text(f), text(r)) for f, r in zip(file, reason, strict=True))


def _read_fits(path: Path) -> Catalog:
    from .io.fitsutil import past_stale_cfitsio_errors

    return past_stale_cfitsio_errors(lambda: _read_fits_once(path))


def _read_fits_once(path: Path) -> Catalog:
    import fitsio

    with fitsio.FITS(str(path)) as f:
        rows = f[CATALOG_HDU].read()
        hdr = f[CATALOG_HDU].read_header()
        errs = f[ERRORS_HDU].read() if f[ERRORS_HDU].get_nrows() else None
        multi = ABSORBERS_HDU in f
        abs_rows = f[ABSORBERS_HDU].read() if multi and f[ABSORBERS_HDU].get_nrows() else None

    def raw(table: np.ndarray | None) -> dict[str, np.ndarray]:
        return {} if table is None or not len(table) else {n: table[n] for n in table.dtype.names}

    cols = _typed(raw(rows), empty_columns(multi))
    absorbers = _typed(raw(abs_rows), empty_absorber_columns()) if multi else None
    errors = () if errs is None else _errors(errs["FILE"], errs["REASON"])
    meta = {
        "mgfast_version": hdr.get("MGFAST"), "method": hdr.get("METHOD"),
        "threshold": hdr.get("THRESH"), "model_sha256": hdr.get("MODELSHA"),
        "date": hdr.get("DATE"), "command": hdr.get("CMDLINE"), "n_files": hdr.get("NFILES"),
    }  # fmt: skip
    if "ABSTHRSH" in hdr:
        meta["absorber_threshold"] = hdr["ABSTHRSH"]
    return Catalog(cols, errors, meta, absorbers)


def _read_csv(path: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    with open(path, newline="", encoding="utf-8") as fh:
        first = fh.readline()
        meta = json.loads(first[2:]) if first.startswith("# ") else {}
        reader = csv.reader(fh)
        header = next(reader)
        rows = list(reader)
    return {k: np.array([r[i] for r in rows], dtype=str) for i, k in enumerate(header)}, meta


def _read_parquet(path: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    import pyarrow.parquet as pq

    t = pq.read_table(str(path))
    raw = (t.schema.metadata or {}).get(b"mgfast")
    cols = {}
    for k in t.column_names:
        c = t.column(k).to_numpy(zero_copy_only=False)
        cols[k] = c.astype(str) if c.dtype.kind == "O" else c
    return cols, (json.loads(raw) if raw else {})


def read_catalog(path: str | Path) -> Catalog:
    """Read back a catalogue written by ``Catalog.write`` (.fits, or .csv / .parquet with their
    .errors and, for multi-absorber runs, .absorbers siblings)."""
    path = Path(path)
    if path.suffix == ".fits":
        return _read_fits(path)
    if path.suffix not in (".csv", ".parquet"):
        raise ValueError(f"{path}: unknown catalogue format (use .fits, .csv or .parquet)")
    read = _read_csv if path.suffix == ".csv" else _read_parquet
    raw, meta = read(path)
    multi = "n_absorbers" in raw
    cols = _typed(raw, empty_columns(multi))
    errors: tuple[FileError, ...] = ()
    if errors_sibling(path).exists():
        errs, _ = read(errors_sibling(path))
        errors = _errors(errs.get("file", np.zeros(0)), errs.get("reason", np.zeros(0)))
    absorbers = None
    if multi:
        a, _ = read(absorbers_sibling(path))
        absorbers = _typed(a, empty_absorber_columns())
    return Catalog(cols, errors, meta, absorbers)


__all__ = ["Catalog", "FileError", "absorbers_sibling", "errors_sibling", "read_catalog"]
