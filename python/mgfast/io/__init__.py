"""Readers of spectrum files: 4MOST L1, ESO Phase 3 SDP, SDSS/BOSS, DESI, generic FITS tables and
NumPy files, each returning ``Spectrum`` objects in vacuum Å (docs/io.md).

    spectra = mgfast.io.read("spec.fits")                 # format detected from the headers
    spectra = mgfast.io.read("coadd.fits", "desi", allow_low_resolution=True)
    for chunk in mgfast.io.iter_read("big.fits", chunk=512): ...   # a big file, a chunk at a time
"""

from __future__ import annotations

from .arms import combine_arms, group_arm_files, object_key
from .desi import combine_cameras
from .formats import FORMATS, LOW_RESOLUTION_FORMATS, detect_format, iter_read, read
from .spectrum import (
    MIN_RESOLUTION,
    LowResolutionError,
    LowResolutionWarning,
    ReadError,
    Spectrum,
    air_to_vacuum,
    vacuum_to_air,
)

__all__ = [
    "FORMATS",
    "LOW_RESOLUTION_FORMATS",
    "MIN_RESOLUTION",
    "LowResolutionError",
    "LowResolutionWarning",
    "ReadError",
    "Spectrum",
    "air_to_vacuum",
    "combine_arms",
    "combine_cameras",
    "detect_format",
    "group_arm_files",
    "iter_read",
    "object_key",
    "read",
    "vacuum_to_air",
]
