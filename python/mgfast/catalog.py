"""Catalogues of runs over files: building their rows file by file (``rows_for``, ``concat``,
``split_rows``: what detect_files and its journal pass around) and reading them back
(``read_catalog``, the same as ``Catalog.read``). The catalogue's types and schema are
mgfast.results'; its files, mgfast.catalog_files' (names kept here for compatibility)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .catalog_files import (
    ABSORBERS_HDU,
    CATALOG_HDU,
    COLUMN_UNITS,
    ERRORS_HDU,
    SUFFIXES,
    absorbers_sibling,
    errors_sibling,
    units_of,
)
from .results import (
    SOURCE_COLUMNS,
    Catalog,
    Detections,
    FileError,
    empty_absorber_columns,
    empty_columns,
    flag_comments,
)

# The absorber rows of a file's (or a chunk's) results travel in the same column dict as its
# spectrum rows, under this prefix: one dict per file keeps journal chunks and dask results whole.
# Their `spectrum` column indexes the rows of that dict (of the catalogue, once concatenated).
ABSORBER_PREFIX = "absorbers/"


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


def read_catalog(path: str | Path) -> Catalog:
    """Read back a catalogue (``Catalog.read``)."""
    return Catalog.read(path)


__all__ = [
    "ABSORBERS_HDU",
    "ABSORBER_PREFIX",
    "CATALOG_HDU",
    "COLUMN_UNITS",
    "ERRORS_HDU",
    "SOURCE_COLUMNS",
    "SUFFIXES",
    "Catalog",
    "FileError",
    "absorbers_sibling",
    "concat",
    "empty_absorber_columns",
    "empty_columns",
    "errors_sibling",
    "flag_comments",
    "read_catalog",
    "rows_for",
    "split_rows",
    "units_of",
]
