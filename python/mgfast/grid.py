"""The 4MOST high-resolution spectral grid, as the compiled core defines it.

Arms (vacuum Å): blue 3926-4355, green 5160-5730, red 6100-6790. Pixels are uniform in ln λ with
step 1/20000 (one resolution element at R = 20000), each arm gridded from its own blue edge,
λ_k = lo · exp(k / 20000) for k = 0 … floor(20000 ln(hi/lo)); the gaps are stripped, so the
model input is the three arms end to end (6315 pixels).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
import numpy.typing as npt

from . import _core

N_PIX: int = _core.N_PIX
N_ARMS: int = _core.N_ARMS
RESOLVING_POWER: float = _core.RESOLVING_POWER
DLNLAMBDA: float = _core.DLNLAMBDA


@dataclass(frozen=True)
class Arm:
    """One spectrograph arm: name, wavelength range (Å, vacuum) and its pixel slice."""

    name: str
    lo: float
    hi: float
    start: int
    stop: int

    @property
    def slice(self) -> slice:
        return slice(self.start, self.stop)

    @property
    def n_pix(self) -> int:
        return self.stop - self.start


ARMS: tuple[Arm, ...] = tuple(Arm(*a) for a in _core.ARMS)


@cache
def _cached(name: str) -> np.ndarray:
    a: np.ndarray = getattr(_core, name)()
    a.setflags(write=False)
    return a


def wavelength() -> npt.NDArray[np.float64]:
    """Pixel centres in Å (vacuum), gaps stripped: shape (N_PIX,)."""
    return _cached("grid_wavelength")


def edges() -> npt.NDArray[np.float64]:
    """Lower and upper edge of every pixel in Å: shape (N_PIX, 2)."""
    e = np.stack([_cached("grid_lo_edge"), _cached("grid_hi_edge")], axis=1)
    e.setflags(write=False)
    return e


def arm_index() -> npt.NDArray[np.int32]:
    """Arm (0 blue, 1 green, 2 red) of every pixel."""
    return _cached("grid_arm_index")


def edge_distance() -> npt.NDArray[np.int32]:
    """Distance in pixels from every pixel to the nearer end of its arm (0 at either end)."""
    return _cached("grid_edge_distance")


def pixel_of(lam: npt.ArrayLike) -> np.ndarray:
    """Fractional pixel coordinate of wavelengths (Å); pixel p's centre maps to p.

    Wavelengths in a gap between arms or outside them give NaN.
    """
    return _core.pixel_of_wavelength(np.asarray(lam, dtype=np.float64))


def wavelength_of(pixel: npt.ArrayLike) -> np.ndarray:
    """Wavelength (Å) of fractional pixel coordinates; NaN outside [-0.5, N_PIX - 0.5]."""
    return _core.wavelength_of_pixel(np.asarray(pixel, dtype=np.float64))


def arm_of(lam: npt.ArrayLike) -> np.ndarray:
    """Arm index of wavelengths (Å), -1 in a gap or outside the arms."""
    p = pixel_of(lam)
    out = np.full(p.shape, -1, dtype=np.int32)
    ok = np.isfinite(p)
    out[ok] = arm_index()[np.clip(np.floor(p[ok] + 0.5).astype(np.int64), 0, N_PIX - 1)]
    return out


def arms_spanned(lam: npt.ArrayLike) -> np.ndarray:
    """The arms (sorted indices) that hold at least one of the wavelengths (Å): those arm_of
    gives, found by bisection on the arms' edges when the wavelengths increase (a spectrum's
    grid: no logarithm per sample), by arm_of otherwise."""
    w = np.asarray(lam, dtype=np.float64)
    if w.ndim != 1 or w.size < 2 or not np.all(np.diff(w) > 0):  # NaNs fail the test too
        a = arm_of(w)
        return np.unique(a[a >= 0])
    found = []
    for i, arm in enumerate(ARMS):
        n = arm.stop - arm.start
        lo = arm.lo * np.exp(-0.5 * DLNLAMBDA)  # pixel_of's bounds: k in [-0.5, n - 0.5]
        hi = arm.lo * np.exp((n - 0.5) * DLNLAMBDA)
        if np.searchsorted(w, hi, side="right") > np.searchsorted(w, lo, side="left"):
            found.append(i)
    return np.array(found, dtype=np.int64)


__all__ = [
    "ARMS",
    "DLNLAMBDA",
    "N_ARMS",
    "N_PIX",
    "RESOLVING_POWER",
    "Arm",
    "arm_index",
    "arm_of",
    "arms_spanned",
    "edge_distance",
    "edges",
    "pixel_of",
    "wavelength",
    "wavelength_of",
]
