"""What every reader returns (``Spectrum``), and the checks they share: units, air or vacuum,
array sizes and shapes, and the resolving-power policy.

Readers raise ``ReadError`` (a ``ValueError``) for a file they cannot make sense of, with the file
and the HDU or column in the message; ``LowResolutionError`` when a spectrum is far coarser than
the R = 20000 the model was trained at and the caller has not said that is acceptable.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..preprocess import wave_problem

# A spectrum's resolving power below this is "far coarser" than the grid's R = 20000 (SDSS and
# BOSS ~2000, DESI ~2000-5500): such spectra are read only with allow_low_resolution=True.
MIN_RESOLUTION: float = 10000.0
# Refuse arrays larger than this many pixels per spectrum before reading them (UVES/ESPRESSO
# spectra have under a million; a header claiming more is corrupt or not a 1D spectrum).
MAX_PIXELS: int = 20_000_000

# Unit strings (TUNITn, lower case, spaces removed) and the factor to Å.
_WAVE_UNITS: dict[str, float] = {
    "angstrom": 1.0, "angstroms": 1.0, "a": 1.0, "aa": 1.0, "å": 1.0, "0.1nm": 1.0,
    "nm": 10.0, "nanometer": 10.0, "nanometers": 10.0,
    "um": 1e4, "micron": 1e4, "microns": 1e4, "µm": 1e4, "m": 1e10, "cm": 1e8,
}  # fmt: skip


class ReadError(ValueError):
    """A file that is not a readable spectrum of the expected format.

    Every failure of ``mgfast.io.read`` and ``detect_format`` to read a file is a ReadError,
    whatever the library underneath raised (that exception is its ``__cause__``): ``path`` is
    the file, ``reason`` what is wrong with it (the message less the path); ``str(e)`` is
    ``"PATH: REASON"`` or, from a reader deeper down, names the HDU or column as well.
    """

    def __init__(self, message: str, *, path: str | None = None, reason: str | None = None):
        super().__init__(message)
        self.path = path
        self.reason = reason if reason is not None else message

    def attach(self, path: str) -> ReadError:
        """This error, its ``path`` set to ``path`` when not set yet and ``reason`` its message
        less that path."""
        if self.path is None:
            self.path = path
            msg = str(self)
            if msg.startswith(path):
                msg = msg[len(path) :]
                msg = msg.lstrip(": ") if not msg.startswith("[") else msg
            self.reason = msg
        return self


class LowResolutionError(ReadError):
    """A spectrum far coarser than R = 20000, read without allow_low_resolution=True."""


class LowResolutionWarning(UserWarning):
    """Spectra far coarser than R = 20000 are being searched (allow_low_resolution=True)."""


@dataclass(frozen=True)
class Spectrum:
    """One 1D spectrum as read from a file, before preprocessing.

    ``wave`` is always vacuum Å, strictly increasing; ``flux`` in the file's units (only its
    shape matters: preprocessing divides by a fitted continuum unless ``normalised``). One of
    ``err`` (1-sigma) and ``ivar`` may be given; ``mask`` is non-zero where a pixel is bad.
    ``meta`` holds what is known about the spectrum: ``ra``/``dec`` (deg), ``format``, ``hdu``,
    ``index`` (the spectrum's position in its file), and format-specific keys.
    """

    wave: np.ndarray
    flux: np.ndarray
    err: np.ndarray | None = None
    ivar: np.ndarray | None = None
    mask: np.ndarray | None = None
    id: str = ""
    resolution: float | None = None  # resolving power λ/Δλ, when the file says
    normalised: bool = False
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def ra(self) -> float:
        return float(self.meta.get("ra", np.nan))

    @property
    def dec(self) -> float:
        return float(self.meta.get("dec", np.nan))


def wave_factor(unit: str | None, where: str) -> float:
    """Factor from a wavelength unit (TUNITn, FITS/VOUnit spelling) to Å; no unit means Å."""
    u = (unit or "").strip().lower().replace(" ", "")
    if u == "":
        return 1.0
    if u in _WAVE_UNITS:
        return _WAVE_UNITS[u]
    raise ReadError(
        f"{where}: unknown wavelength unit {unit!r}; expected Angstrom, nm, um or m "
        "(set TUNIT of the wavelength column)"
    )


def air_to_vacuum(wave_air: np.ndarray) -> np.ndarray:
    """Vacuum wavelengths (Å) of air wavelengths (Å): the IAU standard (Morton 1991, ApJS 77, 119,
    after Edlén 1966), n − 1 = 6.4328e-5 + 2.94981e-2/(146 − σ²) + 2.5540e-4/(41 − σ²) with σ the
    vacuum wavenumber in µm⁻¹. Since σ is the vacuum wavenumber the relation is solved by fixed
    point (three steps converge to 1e-9 Å). Valid above 2000 Å."""
    a = np.asarray(wave_air, np.float64)
    v: np.ndarray = a.copy()
    for _ in range(4):
        v = a * _refractive_index(v)
    return v


def vacuum_to_air(wave_vac: np.ndarray) -> np.ndarray:
    """Air wavelengths (Å) of vacuum wavelengths (Å): the inverse of ``air_to_vacuum``."""
    v = np.asarray(wave_vac, np.float64)
    air: np.ndarray = v / _refractive_index(v)
    return air


def _refractive_index(wave_vac: np.ndarray) -> np.ndarray:
    s2 = (1e4 / wave_vac) ** 2
    return 1.0 + 6.4328e-5 + 2.94981e-2 / (146.0 - s2) + 2.5540e-4 / (41.0 - s2)


def as_vacuum_angstrom(values: np.ndarray, unit: str | None, air: bool, where: str) -> np.ndarray:
    """Wavelengths in the file's unit, air or vacuum → vacuum Å, checked to increase strictly."""
    w = np.asarray(values, np.float64) * wave_factor(unit, where)
    if air:
        w = air_to_vacuum(w)
    check_wave(w, where)
    return w


def check_wave(w: np.ndarray, where: str, cover: bool = True) -> None:
    """Finite, strictly increasing and (``cover``) overlapping the 4MOST arms."""
    if w.ndim != 1 or w.size < 2:
        raise ReadError(f"{where}: wavelength array must be 1D with >= 2 values, got {w.shape}")
    if not np.all(np.isfinite(w)):
        raise ReadError(f"{where}: wavelengths contain NaN or inf")
    if not w[0] > 0:
        raise ReadError(f"{where}: wavelengths must be positive, the first is {w[0]:g}")
    if not np.all(np.diff(w) > 0):
        raise ReadError(f"{where}: wavelengths do not increase strictly")
    problem = wave_problem(float(w[0]), float(w[-1])) if cover else None
    if problem:
        raise ReadError(f"{where}: wavelength range {problem}; wrong unit (TUNIT)?")


def real_1d(x: Any, n: int, name: str, where: str, dtype: type = np.float32) -> np.ndarray:
    """A column value as a real 1D array of ``n`` values."""
    a = np.asarray(x)
    if a.dtype == object or a.dtype.kind not in "fiub":
        raise ReadError(f"{where}: column {name} holds {a.dtype}, expected numbers")
    a = np.squeeze(a) if a.ndim > 1 else a
    if a.shape != (n,):
        raise ReadError(f"{where}: column {name} has shape {a.shape}, expected ({n},)")
    return np.ascontiguousarray(a, dtype=dtype)


def check_pixels(n: int, where: str) -> None:
    if n > MAX_PIXELS:
        raise ReadError(f"{where}: {n:,} pixels per spectrum (over {MAX_PIXELS:,}): corrupt?")


def check_resolution(
    resolution: float | None, fmt: str, allow_low_resolution: bool, where: str
) -> None:
    """Refuse (or warn about) spectra far coarser than the model's R = 20000, and a resolving
    power that is not a positive number (a corrupt SPEC_RES, say)."""
    if resolution is None or resolution >= MIN_RESOLUTION:
        return
    if not resolution > 0:
        raise ReadError(f"{where}: resolving power {resolution:g} (SPEC_RES) is not positive")
    what = f"{where}: {fmt} spectra have R ≈ {resolution:.0f}; the model was trained at R = 20000"
    if not allow_low_resolution:
        raise LowResolutionError(
            f"{what}; pass allow_low_resolution=True (--allow-low-resolution) to search them anyway"
        )
    warnings.warn(
        f"{what}: detections will be less complete and less precise (flag LOW_RESOLUTION)",
        LowResolutionWarning,
        stacklevel=3,
    )


# Header keywords that give the quasar's emission redshift where a file carries one (ESO SDP and
# 4MOST L1 have no standard keyword for it; these are the names in use), read into meta['z_em'].
Z_EM_KEYWORDS = ("Z_EM", "ZEM", "Z_QSO", "ZQSO", "REDSHIFT")


def header_z_em(*headers: Any) -> dict[str, float]:
    """{'z_em': z} from the first header holding one of Z_EM_KEYWORDS with a value >= 0, else
    {}."""
    for hdr in headers:
        z = header_float(hdr, *Z_EM_KEYWORDS)
        if np.isfinite(z) and z >= 0:
            return {"z_em": z}
    return {}


def header_float(hdr: Any, *keys: str) -> float:
    """The first of ``keys`` present in a header as a finite float, else NaN."""
    for k in keys:
        try:
            v = float(hdr[k])
        except (KeyError, TypeError, ValueError):
            continue
        if np.isfinite(v):
            return v
    return float("nan")


def header_str(hdr: Any, *keys: str) -> str:
    for k in keys:
        try:
            v = hdr[k]
        except (KeyError, TypeError):
            continue
        if v is not None and str(v).strip():
            return str(v).strip()
    return ""


def stem(path: str | Path) -> str:
    name = Path(path).name
    for ext in (".fits.gz", ".fits.fz", ".fit.gz", ".fits", ".fit", ".fts", ".npz", ".npy"):
        if name.lower().endswith(ext):
            return name[: -len(ext)]
    return name


__all__ = [
    "MAX_PIXELS",
    "MIN_RESOLUTION",
    "LowResolutionError",
    "LowResolutionWarning",
    "ReadError",
    "Spectrum",
    "air_to_vacuum",
    "as_vacuum_angstrom",
    "vacuum_to_air",
    "wave_factor",
]
