"""mgfast's results, the single source of their columns: ``Detections`` (one row per spectrum
given to ``Detector.detect``, and with a multi-absorber model one per absorber), ``Catalog`` (the
rows of a run over files, the files that failed, the run's provenance) and their schema (column
names, dtypes, units). One writer and one reader serve both (mgfast.catalog_files): what
``Detections.write`` and ``Catalog.write`` (and so ``mgfast detect``) write, ``Catalog.read``
reads back."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import _core
from .absorbers import Absorbers, decode_absorbers
from .catalog_files import read_tables, units_of, write_tables
from .flags import MASK_REASONS, DetectionFlag, SpectrumFlag

if TYPE_CHECKING:
    from astropy.table import Table  # untyped: Any to mypy

# Columns ahead of Detections.columns() in a catalogue: where each spectrum came from.
SOURCE_COLUMNS: tuple[str, ...] = ("id", "file", "index", "ra", "dec")


# The per-spectrum EW columns (Detections.ew2796 ...), in catalogue order.
_EW_COLUMNS = ("ew2796", "ew2796_err", "ew2803", "ew2803_err")


@dataclass(frozen=True)
class Detections:
    """One row per input spectrum."""

    probability: np.ndarray  # float32: network probability, or matched-filter significance
    wavelength: np.ndarray  # float64: observed λ2796 (Å), NaN where nothing was found
    redshift: np.ndarray  # float64: λ2796 / 2796.3543 − 1
    detected: np.ndarray  # bool: probability >= threshold
    flags: np.ndarray  # uint32: SpectrumFlag bits from preprocessing, DetectionFlag bits
    masked_fraction: np.ndarray  # float32: fraction of the grid's pixels masked
    snr: np.ndarray  # float32: median SNR per usable pixel (normalised flux), NaN without errors
    threshold: float
    method: str
    model_sha256: str | None = None
    model: str | None = None  # the model's name (a shipped one) or directory
    # A multi-absorber model: every absorber found, one row each (mgfast.absorbers; `spectrum`
    # indexes the rows above), and n_absorbers above absorber_threshold. The per-spectrum row is
    # their summary: the most probable absorber's probability, λ2796 and EWs, detected exactly
    # when n_absorbers > 0 (threshold == absorber_threshold for these models).
    absorbers: Absorbers | None = None
    n_absorbers: np.ndarray | None = None
    absorber_threshold: float | None = None
    # float32, rest Å: the MgII doublet's EWs measured on the spectrum at λ2796 (mgfast.ew),
    # where detected; NaN elsewhere, for spectra without errors and for GPU arrays (None: none
    # measured at all).
    ew2796: np.ndarray | None = None
    ew2796_err: np.ndarray | None = None
    ew2803: np.ndarray | None = None
    ew2803_err: np.ndarray | None = None
    z_em: np.ndarray | None = None  # float64: the quasar's redshift as given (NaN: unknown)
    # float32 (N, len(mgfast.quality.MASK_REASONS)): masked_fraction by reason (PixelFlag), each
    # masked pixel under its lowest bit; the catalogue's masked_<reason> columns. None: unknown.
    masked_by: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.probability.size)

    def rows(self, start: int, stop: int) -> Detections:
        """The detections of spectra start ... stop - 1, their absorbers re-indexed to them."""
        fields: dict[str, Any] = {
            k: v[start:stop] if isinstance(v, np.ndarray) else v for k, v in self.__dict__.items()
        }
        if self.absorbers is not None:
            at = (self.absorbers.spectrum >= start) & (self.absorbers.spectrum < stop)
            a = self.absorbers.select(at)
            fields["absorbers"] = Absorbers(**{**a.columns(), "spectrum": a.spectrum - start})
        return Detections(**fields)

    @classmethod
    def concat(cls, parts: list[Detections]) -> Detections:
        """The rows of several Detections of one detector, in order, as one (absorbers
        re-indexed to the joined rows). Run settings (threshold, method, model) are the first
        part's."""
        if not parts:
            raise ValueError("parts: nothing to concatenate")
        if len(parts) == 1:
            return parts[0]
        first = parts[0]
        fields: dict[str, Any] = {}
        for k, v in first.__dict__.items():
            if isinstance(v, np.ndarray):
                fields[k] = np.concatenate([getattr(p, k) for p in parts])
            elif k != "absorbers":
                fields[k] = v
        if first.absorbers is not None:
            start = np.cumsum([0, *(len(p) for p in parts)])
            cols = [p.absorbers.columns() for p in parts if p.absorbers is not None]
            joined = {k: np.concatenate([c[k] for c in cols]) for k in cols[0]}
            joined["spectrum"] = np.concatenate([
                p.absorbers.spectrum + s for p, s in zip(parts, start[:-1], strict=True)
                if p.absorbers is not None
            ])  # fmt: skip
            fields["absorbers"] = Absorbers(**joined)
        return cls(**fields)

    def columns(self) -> dict[str, np.ndarray]:
        nan = np.full(np.shape(self.probability), np.nan, np.float32)
        ews = {k: nan if getattr(self, k) is None else getattr(self, k) for k in _EW_COLUMNS}
        return {
            "probability": self.probability,
            "detected": self.detected,
            "lambda2796": self.wavelength,
            "z_abs": self.redshift,
            "z_em": np.full(len(self), np.nan) if self.z_em is None else self.z_em,
            **ews,
            "snr": self.snr,
            "flags": self.flags,
            "masked_fraction": self.masked_fraction,
            **self.masked_by_columns(),
        } | ({} if self.n_absorbers is None else {"n_absorbers": self.n_absorbers})

    def masked_by_columns(self) -> dict[str, np.ndarray]:
        """masked_by as the catalogue's columns masked_not_covered, masked_bad_input, ...
        (NaN where unknown)."""
        n = int(np.size(self.probability))
        by = (np.full((n, len(MASK_REASONS)), np.nan, np.float32) if self.masked_by is None
              else np.reshape(self.masked_by, (n, len(MASK_REASONS))))  # fmt: skip
        one = np.ndim(self.probability) == 0  # one spectrum: scalars, like the other columns
        return {f"masked_{str(r.name).lower()}": by[0, j] if one else by[:, j]
                for j, r in enumerate(MASK_REASONS)}  # fmt: skip

    def meta(self) -> dict[str, object]:
        m: dict[str, object] = {
            "mgfast_version": _core.__version__,
            "method": self.method,
            "threshold": self.threshold,
            "model_sha256": self.model_sha256 or "",
        }
        if self.model is not None:
            m["model"] = self.model
        if self.absorber_threshold is not None:
            m["absorber_threshold"] = self.absorber_threshold
        return m

    def to_table(self) -> Table:
        """An astropy Table with the run's metadata in ``meta`` (astropy must be installed)."""
        from astropy.table import Table

        cols = self.columns()
        return Table(cols, meta=self.meta(), units=units_of(cols))

    def absorber_columns(self) -> dict[str, np.ndarray] | None:
        """One row per absorber (multi-absorber models), with a `detected` column."""
        if self.absorbers is None:
            return None
        a = self.absorbers
        t = self.threshold if self.absorber_threshold is None else self.absorber_threshold
        return a.columns() | {"detected": a.probability >= t}

    def to_catalog(self) -> Catalog:
        """These detections as a Catalog (what ``write`` writes): source columns id (the row
        number), file (empty), index (the row number), ra and dec (NaN), then the columns."""
        n = len(self)
        source = {
            "id": np.arange(n).astype(str), "file": np.full(n, ""),
            "index": np.arange(n, dtype=np.int64), "ra": np.full(n, np.nan),
            "dec": np.full(n, np.nan),
        }  # fmt: skip
        rows = {**source, **self.columns()}
        a = self.absorber_columns()
        absorbers = None if a is None else {k: v[a["spectrum"]] for k, v in source.items()} | a
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
        return Catalog(rows, (), self.meta() | {"n_files": 0, "date": now}, absorbers)

    def plot(self, i: int, flux: Any, wave: Any = None, err: Any = None, **kwargs: Any) -> Any:
        """A vetting figure (matplotlib) of spectrum i: give the arrays given to detect (all
        rows, or row i alone), and any of detect's ivar, mask, normalised; mgfast.plot."""
        from .plot import plot_detection

        return plot_detection(self, i, flux, wave, err, **kwargs)

    def write(self, path: str | Path) -> list[Path]:
        """Write the detections as a catalogue (Catalog.write: .fits, .csv, .parquet, .h5; with
        a multi-absorber model its absorber table too); read it back with ``Catalog.read``."""
        return self.to_catalog().write(path)


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

    @classmethod
    def read(cls, path: str | Path) -> Catalog:
        """Read back a catalogue written by ``Catalog.write`` or ``Detections.write`` (.fits,
        .h5, or .csv / .parquet with their .errors and, for multi-absorber runs, .absorbers
        siblings): the same columns, errors and provenance."""
        rows, errs, meta, absorbers = read_tables(path)
        multi = absorbers is not None or "n_absorbers" in rows or "N_ABSORBERS" in rows
        return cls(
            _typed(rows, empty_columns(multi)),
            _errors(errs.get("file", np.zeros(0)), errs.get("reason", np.zeros(0))),
            meta,
            _typed(absorbers or {}, empty_absorber_columns()) if multi else None,
        )

    def write(self, path: str | Path) -> list[Path]:
        """Write the catalogue by extension (.fits, .csv, .parquet, .h5 / .hdf5;
        mgfast.catalog_files); returns the files written."""
        errors = {
            "file": np.array([e.file for e in self.errors], dtype=str),
            "reason": np.array([e.reason for e in self.errors], dtype=str),
        }
        return write_tables(path, self.columns, errors, self.meta, self.absorbers,
                            flag_comments())  # fmt: skip


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


def flag_comments() -> list[str]:
    bits = [*SpectrumFlag, *DetectionFlag]
    return [f"flags bit {int(b).bit_length() - 1}: {b.name}" for b in bits]


__all__ = [
    "SOURCE_COLUMNS",
    "Catalog",
    "Detections",
    "FileError",
    "empty_absorber_columns",
    "empty_columns",
]
