"""Atomic data of the lines mgfast uses, as defined once in the core
(``src/core/common/atomic.hpp``)."""

from __future__ import annotations

from dataclasses import dataclass

from . import _core


@dataclass(frozen=True)
class Line:
    name: str
    wavelength: float  # rest, vacuum Å
    f: float  # oscillator strength
    gamma: float  # damping constant, s^-1


LINES: dict[str, Line] = {k: Line(k, *v) for k, v in _core.LINES.items()}
MGII_2796: Line = LINES["MgII 2796"]
MGII_2803: Line = LINES["MgII 2803"]
C_KMS = 299792.458  # the speed of light, km/s

__all__ = ["C_KMS", "LINES", "MGII_2796", "MGII_2803", "Line"]
