"""The catalogue of a run over files: one row per spectrum, one error per unreadable file, and the
run's provenance; written as FITS (fitsio: HDU 'CATALOG' and HDU 'ERRORS'), CSV (plus a sibling
``*.errors.csv``) or Parquet (plus ``*.errors.parquet``), always through a temporary file that is
renamed into place, so a catalogue on disk is whole."""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .detector import Detections
from .flags import DetectionFlag, SpectrumFlag

# Columns ahead of Detections.columns(): where each spectrum came from.
SOURCE_COLUMNS: tuple[str, ...] = ("id", "file", "index", "ra", "dec")
CATALOG_HDU = "CATALOG"
ERRORS_HDU = "ERRORS"
SUFFIXES = (".fits", ".csv", ".parquet")


@dataclass(frozen=True)
class FileError:
    """A file that gave no catalogue rows, and why (one line)."""

    file: str
    reason: str


@dataclass(frozen=True)
class Catalog:
    """Detections over files: ``columns`` (SOURCE_COLUMNS, then Detections.columns()), ``errors``
    (one per failed file) and ``meta`` (mgfast version, method, threshold, model SHA-256, ...)."""

    columns: dict[str, np.ndarray]
    errors: tuple[FileError, ...] = ()
    meta: dict[str, Any] = field(default_factory=dict)

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
        return Table(dict(self.columns), meta=meta)

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
        _atomic(path, lambda tmp: write(self.columns, self.meta, tmp))
        return [path, errors_path]


def errors_sibling(path: Path) -> Path:
    """Where the error table of a CSV or Parquet catalogue goes: cat.csv → cat.errors.csv."""
    return path.with_name(path.stem + ".errors" + path.suffix)


def empty_columns() -> dict[str, np.ndarray]:
    dtypes = {"id": str, "file": str, "index": np.int64, "ra": np.float64, "dec": np.float64}
    cols = {k: np.zeros(0, dtypes[k]) for k in SOURCE_COLUMNS}
    proto = Detections(
        probability=np.zeros(0, np.float32), wavelength=np.zeros(0), redshift=np.zeros(0),
        detected=np.zeros(0, bool), flags=np.zeros(0, np.uint32),
        masked_fraction=np.zeros(0, np.float32), snr=np.zeros(0, np.float32), threshold=0.0,
        method="",
    )  # fmt: skip
    return {**cols, **proto.columns()}


def rows_for(
    det: Detections, ids: list[str], file: str, index: list[int], ra: list[float], dec: list[float]
) -> dict[str, np.ndarray]:
    """Catalogue columns for the detections of the spectra of one file."""
    return {
        "id": np.array(ids, dtype=str),
        "file": np.full(len(ids), file),
        "index": np.asarray(index, np.int64),
        "ra": np.asarray(ra, np.float64),
        "dec": np.asarray(dec, np.float64),
        **det.columns(),
    }


def concat(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Concatenate column dicts (in order) onto the catalogue's schema."""
    base = empty_columns()
    if not parts:
        return base
    out = {}
    for k, v in base.items():
        c = np.concatenate([v, *(p[k] for p in parts)])
        out[k] = c if v.dtype.kind == "U" else c.astype(v.dtype)  # strings keep their width
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


def _structured(cols: dict[str, np.ndarray]) -> np.ndarray:
    conv = {k: _ascii(v) if v.dtype.kind == "U" else v for k, v in cols.items()}
    n = len(next(iter(conv.values())))
    out = np.zeros(n, dtype=[(k.upper(), v.dtype) for k, v in conv.items()])
    for k, v in conv.items():
        out[k.upper()] = v
    return out


def _write_fits(cat: Catalog, path: Path) -> None:
    import fitsio

    m = cat.meta
    header = [
        {"name": "MGFAST", "value": str(m.get("mgfast_version", "")), "comment": "mgfast version"},
        {"name": "METHOD", "value": str(m.get("method", "")), "comment": "network or filter"},
        {"name": "THRESH", "value": float(m.get("threshold", np.nan)), "comment": "threshold"},
        {"name": "MODELSHA", "value": str(m.get("model_sha256", "")),
         "comment": "SHA-256 of model.onnx"},
        {"name": "DATE", "value": str(m.get("date", "")), "comment": "UTC time of the run"},
        {"name": "NSPEC", "value": len(cat), "comment": "catalogue rows (spectra)"},
        {"name": "NFILES", "value": int(m.get("n_files", 0)), "comment": "input files"},
        {"name": "NERRORS", "value": len(cat.errors), "comment": "files that failed"},
        {"name": "CMDLINE", "value": str(m.get("command", "")), "comment": "command line"},
    ]  # fmt: skip
    header += [{"name": "COMMENT", "value": c} for c in flag_comments()]
    errs = {
        "file": np.array([e.file for e in cat.errors], dtype=str),
        "reason": np.array([e.reason for e in cat.errors], dtype=str),
    }
    with fitsio.FITS(str(path), "rw", clobber=True) as f:
        f.write(_structured(cat.columns), extname=CATALOG_HDU, header=header)
        f.write(_structured(errs), extname=ERRORS_HDU)


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


def read_catalog(path: str | Path) -> Catalog:
    """Read back a FITS catalogue written by ``Catalog.write``."""
    import fitsio

    with fitsio.FITS(str(path)) as f:
        rows = f[CATALOG_HDU].read()
        hdr = f[CATALOG_HDU].read_header()
        errs = f[ERRORS_HDU].read() if f[ERRORS_HDU].get_nrows() else None
    base = empty_columns()
    cols = {}
    for k, v in base.items():
        c = rows[k.upper()] if rows is not None and len(rows) else v
        if c.dtype.kind in "SU":  # fitsio gives str or bytes, by version
            cols[k] = np.char.decode(c) if c.dtype.kind == "S" else np.asarray(c)
        else:
            cols[k] = np.asarray(c, v.dtype)
    errors = ()
    if errs is not None:
        errors = tuple(
            FileError(f.decode() if isinstance(f, bytes) else str(f),
                      r.decode() if isinstance(r, bytes) else str(r))
            for f, r in zip(errs["FILE"], errs["REASON"], strict=True)
        )  # fmt: skip
    meta = {
        "mgfast_version": hdr.get("MGFAST"), "method": hdr.get("METHOD"),
        "threshold": hdr.get("THRESH"), "model_sha256": hdr.get("MODELSHA"),
        "date": hdr.get("DATE"), "command": hdr.get("CMDLINE"), "n_files": hdr.get("NFILES"),
    }  # fmt: skip
    return Catalog(cols, errors, meta)


__all__ = ["Catalog", "FileError", "errors_sibling", "read_catalog"]
