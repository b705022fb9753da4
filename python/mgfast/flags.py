"""Bit flags returned by preprocessing: per pixel (uint8) and per spectrum (uint32).

The bit values are defined once, in the compiled core (``src/cpp/flags.hpp``).
"""

from __future__ import annotations

import enum

from . import _core

PixelFlag = enum.IntFlag("PixelFlag", dict(_core.PIXEL_FLAGS))  # type: ignore[misc]
PixelFlag.__doc__ = """Why an output pixel is masked (any bit set: flux 1, ivar 0).

NOT_COVERED: no input data there; BAD_INPUT: NaN/inf flux, error <= 0, ivar 0 or a bad mask bit;
ARM_MISSING: the whole arm had too little data; CONTINUUM_FAILED: the arm's continuum fit failed.
"""

SpectrumFlag = enum.IntFlag("SpectrumFlag", dict(_core.SPECTRUM_FLAGS))  # type: ignore[misc]
SpectrumFlag.__doc__ = """Per-spectrum summary of preprocessing.

ARM_MISSING_BLUE/GREEN/RED: that arm was dropped (masked); LOW_RESOLUTION: input R < 20000;
CONTINUUM_FAILED: some arm's continuum fit failed; ALL_MASKED: no usable pixel;
NO_ERRORS: no error array was given, so ivar is 0 everywhere.
"""

ARM_MISSING = (
    SpectrumFlag.ARM_MISSING_BLUE,
    SpectrumFlag.ARM_MISSING_GREEN,
    SpectrumFlag.ARM_MISSING_RED,
)

__all__ = ["ARM_MISSING", "PixelFlag", "SpectrumFlag"]
