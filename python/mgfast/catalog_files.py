"""The one catalogue file format, at the level of tables: what ``Catalog.write`` and
``Detections.write`` (mgfast.results) write and ``Catalog.read`` reads, for the API and the CLI
alike. A catalogue is a table of spectrum rows, an error table (file, reason), optionally an
absorber table, and the run's provenance (``meta``). By extension:

- ``.fits`` (fitsio): the primary HDU carries the provenance, then HDUs CATALOG (the rows, the
  provenance again, the flag bits as COMMENT cards), ERRORS and, for multi-absorber runs,
  ABSORBERS; column names upper case, units in TUNITn, strings ASCII (other characters as
  backslash escapes);
- ``.csv``: the rows, a first comment line with the provenance as JSON, and sibling files
  NAME.errors.csv and NAME.absorbers.csv;
- ``.parquet``: likewise, the provenance in the schema metadata;
- ``.h5`` / ``.hdf5``: groups catalog, errors and absorbers, the provenance as file attributes.

Every file is written to a temporary name and renamed into place, so a catalogue on disk is whole.
This module knows no column but the units (COLUMN_UNITS); mgfast.results types what it reads.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np

from ._fileutil import atomic_write

CATALOG_HDU = "CATALOG"
ERRORS_HDU = "ERRORS"
ABSORBERS_HDU = "ABSORBERS"
SUFFIXES = (".fits", ".csv", ".parquet", ".h5", ".hdf5")

Columns = dict[str, np.ndarray]

# Physical units of the catalogue's columns (FITS TUNITn, astropy Table units); the others have
# none (probabilities, flags, counts, redshifts, SNR).
_ANGSTROM = (
    "lambda2796", "lambda2796_err", "ew2796", "ew2796_err", "ew2803", "ew2803_err",
    "ew2796_measured", "ew2796_measured_err", "ew2803_measured", "ew2803_measured_err",
)  # fmt: skip
COLUMN_UNITS: dict[str, str] = {"ra": "deg", "dec": "deg", **dict.fromkeys(_ANGSTROM, "Angstrom")}

# The provenance in a FITS header: (meta key, card, comment), in this order.
_CARDS = (
    ("mgfast_version", "MGFAST", "mgfast version"),
    ("method", "METHOD", "network or matched-filter"),
    ("model", "MODEL", "model name or directory"),
    ("model_sha256", "MODELSHA", "SHA-256 of model.onnx"),
    ("threshold", "THRESH", "spectrum detection threshold"),
    ("absorber_threshold", "ABSTHRSH", "absorber threshold"),
    ("date", "DATE", "UTC time of the run"),
    ("n_files", "NFILES", "input files"),
    ("command", "CMDLINE", "command line"),
)


def units_of(cols: Columns) -> dict[str, str]:
    """The units of those of ``cols`` that have one (COLUMN_UNITS)."""
    return {k: COLUMN_UNITS[k] for k in cols if k in COLUMN_UNITS}


def errors_sibling(path: Path) -> Path:
    """Where the error table of a CSV or Parquet catalogue goes: cat.csv → cat.errors.csv."""
    return path.with_name(path.stem + ".errors" + path.suffix)


def absorbers_sibling(path: Path) -> Path:
    """Where the absorber table of a CSV or Parquet catalogue goes: cat.csv → cat.absorbers.csv."""
    return path.with_name(path.stem + ".absorbers" + path.suffix)


def check_suffix(path: Path) -> None:
    if path.suffix not in SUFFIXES:
        raise ValueError(
            f"{path}: unknown catalogue format (use .fits, .csv, .parquet, .h5 or .hdf5)"
        )


def write_tables(
    path: str | Path,
    rows: Columns,
    errors: Columns,
    meta: dict[str, Any],
    absorbers: Columns | None,
    comments: list[str] = (),  # type: ignore[assignment]
) -> list[Path]:
    """Write a catalogue by extension; returns the files written. ``errors``: columns file and
    reason; ``comments``: FITS COMMENT cards (the flag bits)."""
    path = Path(path)
    check_suffix(path)
    meta = {k: v for k, v in meta.items() if v is not None}
    if path.suffix == ".fits":
        from .io.fitsutil import past_stale_cfitsio_errors

        def fits(tmp: Path) -> None:
            past_stale_cfitsio_errors(
                lambda: _write_fits(tmp, rows, errors, meta, absorbers, comments)
            )

        atomic_write(path, fits)
        return [path]
    if path.suffix in (".h5", ".hdf5"):
        atomic_write(path, lambda tmp: _write_hdf5(tmp, rows, errors, meta, absorbers))
        return [path]
    write = _write_csv if path.suffix == ".csv" else _write_parquet
    written = [path, errors_sibling(path)]
    atomic_write(written[1], lambda tmp: write(errors, meta, tmp))
    if absorbers is not None:
        written.append(absorbers_sibling(path))
        atomic_write(written[2], lambda tmp: write(absorbers, meta, tmp))
    elif absorbers_sibling(path).exists():  # an earlier multi-absorber run's: not this one's
        absorbers_sibling(path).unlink()
    atomic_write(path, lambda tmp: write(rows, meta, tmp))
    return written


def read_tables(path: str | Path) -> tuple[Columns, Columns, dict[str, Any], Columns | None]:
    """(rows, errors, meta, absorbers or None) as written by write_tables; the columns untyped
    (CSV gives strings; mgfast.results puts them back on the catalogue's schema)."""
    path = Path(path)
    check_suffix(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such catalogue")
    if path.suffix == ".fits":
        from .io.fitsutil import past_stale_cfitsio_errors

        return past_stale_cfitsio_errors(lambda: _read_fits(path))
    if path.suffix in (".h5", ".hdf5"):
        return _read_hdf5(path)
    read = _read_csv if path.suffix == ".csv" else _read_parquet
    rows, meta = read(path)
    errors: Columns = {}
    if errors_sibling(path).exists():
        errors = read(errors_sibling(path))[0]
    absorbers = read(absorbers_sibling(path))[0] if absorbers_sibling(path).exists() else None
    return rows, errors, meta, absorbers


def _ascii(a: np.ndarray) -> np.ndarray:
    """FITS strings are ASCII: non-ASCII characters become backslash escapes."""
    b = [s.encode("ascii", "backslashreplace") for s in a.tolist()]
    width = max([1, *(len(s) for s in b)])
    return np.array(b, dtype=f"S{width}")


def _card_value(v: Any) -> Any:
    if isinstance(v, bool | np.bool_):
        return bool(v)
    if isinstance(v, int | np.integer):
        return int(v)
    if isinstance(v, float | np.floating):
        return float(v)
    return str(v).encode("ascii", "backslashreplace").decode()


def provenance_cards(meta: dict[str, Any]) -> list[dict[str, Any]]:
    """The run's provenance as FITS header cards (those of _CARDS that meta has)."""
    return [
        {"name": card, "value": _card_value(meta[key]), "comment": comment}
        for key, card, comment in _CARDS
        if meta.get(key) is not None
    ]


def _structured(cols: Columns) -> np.ndarray:
    conv = {k: _ascii(v) if v.dtype.kind == "U" else v for k, v in cols.items()}
    n = len(next(iter(conv.values()))) if conv else 0
    out = np.zeros(n, dtype=[(k.upper(), v.dtype) for k, v in conv.items()])
    for k, v in conv.items():
        out[k.upper()] = v
    return out


def _units(cols: Columns) -> list[str]:
    return [COLUMN_UNITS.get(k, "") for k in cols]


def _write_fits(
    path: Path, rows: Columns, errors: Columns, meta: dict[str, Any],
    absorbers: Columns | None, comments: list[str],
) -> None:  # fmt: skip
    import fitsio

    cards = provenance_cards(meta)
    n = len(next(iter(rows.values()))) if rows else 0
    header = [*cards, {"name": "NSPEC", "value": n, "comment": "catalogue rows (spectra)"},
              {"name": "NERRORS", "value": len(errors.get("file", ())),
               "comment": "files that failed"}]  # fmt: skip
    with fitsio.FITS(str(path), "rw", clobber=True) as f:
        f.write(None, header=header)  # the primary HDU: the provenance alone
        f.write(_structured(rows), extname=CATALOG_HDU, units=_units(rows),
                header=[*header, *({"name": "COMMENT", "value": c} for c in comments)])  # fmt: skip
        f.write(_structured(errors), extname=ERRORS_HDU)
        if absorbers is not None:
            n_det = int(np.count_nonzero(absorbers["detected"]))
            f.write(_structured(absorbers), extname=ABSORBERS_HDU, units=_units(absorbers),
                    header=[
                        {"name": "NABS", "value": len(absorbers["spectrum"]),
                         "comment": "absorber candidates (rows)"},
                        {"name": "NABSDET", "value": n_det,
                         "comment": "of them probability >= ABSTHRSH"},
                    ])  # fmt: skip


def _read_fits(path: Path) -> tuple[Columns, Columns, dict[str, Any], Columns | None]:
    import fitsio

    def table(hdu: Any) -> Columns:
        if not hdu.get_nrows():
            return {}
        t = hdu.read()
        return {n.lower(): t[n] for n in t.dtype.names}

    with fitsio.FITS(str(path)) as f:
        hdr = f[CATALOG_HDU].read_header()
        rows = table(f[CATALOG_HDU])
        errors = table(f[ERRORS_HDU])
        absorbers = table(f[ABSORBERS_HDU]) if ABSORBERS_HDU in f else None
    meta = {key: hdr[card] for key, card, _ in _CARDS if card in hdr}
    return rows, errors, meta, absorbers


def _write_csv(cols: Columns, meta: dict[str, Any], path: Path) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        fh.write("# " + json.dumps(meta, sort_keys=True, default=_json) + "\n")
        w = csv.writer(fh)
        w.writerow(list(cols))
        lists = [c.tolist() for c in cols.values()]
        for row in zip(*lists, strict=True):
            w.writerow([repr(v) if isinstance(v, float) else v for v in row])


def _read_csv(path: Path) -> tuple[Columns, dict[str, Any]]:
    with open(path, newline="", encoding="utf-8") as fh:
        first = fh.readline()
        meta = json.loads(first[2:]) if first.startswith("# ") else {}
        reader = csv.reader(fh)
        header = next(reader)
        rows = list(reader)
    return {k: np.array([r[i] for r in rows], dtype=str) for i, k in enumerate(header)}, meta


def _json(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else str(v)


def _write_parquet(cols: Columns, meta: dict[str, Any], path: Path) -> None:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise RuntimeError(
            f"{path}: writing Parquet needs pyarrow (pip install pyarrow), or use .fits or .csv"
        ) from None
    table = pa.table(dict(cols))
    table = table.replace_schema_metadata(
        {"mgfast": json.dumps(meta, sort_keys=True, default=_json)}
    )
    pq.write_table(table, str(path))


def _read_parquet(path: Path) -> tuple[Columns, dict[str, Any]]:
    import pyarrow.parquet as pq

    t = pq.read_table(str(path))
    raw = (t.schema.metadata or {}).get(b"mgfast")
    cols = {}
    for k in t.column_names:
        c = t.column(k).to_numpy(zero_copy_only=False)
        cols[k] = c.astype(str) if c.dtype.kind == "O" else c
    return cols, (json.loads(raw) if raw else {})


def _write_hdf5(
    path: Path, rows: Columns, errors: Columns, meta: dict[str, Any], absorbers: Columns | None
) -> None:
    import h5py

    with h5py.File(path, "w") as f:
        f.attrs["format"] = "mgfast-catalogue-1"
        f.attrs["meta"] = json.dumps(meta, sort_keys=True, default=_json)
        for name, cols in (("catalog", rows), ("errors", errors), ("absorbers", absorbers)):
            if cols is None:
                continue
            g = f.create_group(name)
            for k, v in cols.items():
                g.create_dataset(k, data=v.astype(bytes) if v.dtype.kind == "U" else v)


def _read_hdf5(path: Path) -> tuple[Columns, Columns, dict[str, Any], Columns | None]:
    import h5py

    def group(g: Any) -> Columns:
        return {k: g[k][()] for k in g}

    with h5py.File(path, "r") as f:
        meta = json.loads(f.attrs["meta"])
        rows, errors = group(f["catalog"]), group(f["errors"])
        absorbers = group(f["absorbers"]) if "absorbers" in f else None
    return rows, errors, meta, absorbers


__all__ = [
    "COLUMN_UNITS",
    "SUFFIXES",
    "absorbers_sibling",
    "errors_sibling",
    "read_tables",
    "units_of",
    "write_tables",
]
