"""Bit flags returned by preprocessing: per pixel (uint8) and per spectrum (uint32).

The bit values are defined once, in the compiled core (``src/core/common/flags.hpp``).
"""

from __future__ import annotations

import enum

from . import _core

_PIX = _core.PIXEL_FLAGS
_SPEC = _core.SPECTRUM_FLAGS


class PixelFlag(enum.IntFlag):
    """Why an output pixel is masked (any bit set: flux 1, ivar 0).

    NOT_COVERED: no input data there; BAD_INPUT: NaN/inf flux, error <= 0, ivar 0 or a bad mask
    bit; ARM_MISSING: the whole arm had too little data; CONTINUUM_FAILED: the arm's continuum fit
    failed, or the fit is not trusted at this pixel (no support on both sides, or a continuum
    below the noise); BEYOND_ZEM: redward of where MgII can be given the quasar's redshift
    (Detector.detect's z_em: λ2803 of an absorber ASSOCIATED_KMS above z_em), masked so that
    nothing is searched there. SPIKE: a spike (cosmic ray, hot pixel) far above its neighbours
    and the continuum, found while fitting the continuum (``normalised=False`` only).
    """

    NOT_COVERED = _PIX["NOT_COVERED"]
    BAD_INPUT = _PIX["BAD_INPUT"]
    ARM_MISSING = _PIX["ARM_MISSING"]
    CONTINUUM_FAILED = _PIX["CONTINUUM_FAILED"]
    BEYOND_ZEM = _PIX["BEYOND_ZEM"]
    SPIKE = _PIX["SPIKE"]


class SpectrumFlag(enum.IntFlag):
    """Per-spectrum summary of preprocessing.

    ARM_MISSING_BLUE/GREEN/RED: that arm was dropped (masked); LOW_RESOLUTION: input R < 20000;
    CONTINUUM_FAILED: some arm's continuum fit failed or was not trusted at some usable pixel;
    ALL_MASKED: no usable pixel;
    NO_ERRORS: no error array was given, so ivar is 0 everywhere.
    """

    ARM_MISSING_BLUE = _SPEC["ARM_MISSING_BLUE"]
    ARM_MISSING_GREEN = _SPEC["ARM_MISSING_GREEN"]
    ARM_MISSING_RED = _SPEC["ARM_MISSING_RED"]
    LOW_RESOLUTION = _SPEC["LOW_RESOLUTION"]
    CONTINUUM_FAILED = _SPEC["CONTINUUM_FAILED"]
    ALL_MASKED = _SPEC["ALL_MASKED"]
    NO_ERRORS = _SPEC["NO_ERRORS"]


# The values come from the core (src/core/common/flags.hpp); the names must be all of its names,
# in its order.
for _flag, _names in ((PixelFlag, _PIX), (SpectrumFlag, _SPEC)):
    if [m.name for m in _flag] != list(_names):
        raise ImportError(f"mgfast.flags.{_flag.__name__} lists {[m.name for m in _flag]}, the "
                          f"compiled core {list(_names)}: rebuild, or update flags.py")  # fmt: skip


MASK_REASONS: tuple[PixelFlag, ...] = tuple(PixelFlag)
"""Why pixels were masked, in the order of ``Detections.masked_by``'s columns (the catalogue's
masked_not_covered, masked_bad_input, ...): the PixelFlag bits, lowest first."""


class DetectionFlag(enum.IntFlag):
    """What the Detector adds to SpectrumFlag's bits in ``Detections.flags`` (bits 16 and up; the
    core's SpectrumFlag keeps the low 16).

    LOW_SNR: median SNR per pixel of the normalised spectrum, over its usable pixels, below
    ``LOW_SNR_LIMIT`` (3, the lowest SNR the model was trained on); NEAR_EDGE: λ2796 or λ2803 lies
    within ``EDGE_PIXELS`` of an arm's end, in a gap or off the arms; NEAR_MASKED: a masked pixel
    lies within ``EDGE_PIXELS`` of either line. The last two are set wherever λ2796 is finite,
    detected or not. NOT_NORMALISED: the flux was given as continuum-normalised (the default,
    ``normalised=True``) but the median of its usable pixels lies outside
    ``NORMALISED_MEDIAN_RANGE``: it was searched as given, which fails; pass normalised=False
    (the Detector also warns, NormalisationWarning). With the quasar's redshift z_em given:
    IN_FOREST: λ2796 lies in the Lyα forest (below 1215.67 (1 + z_em) Å), where both the
    continuum and the absorbers are less certain; ASSOCIATED: z_abs within ``ASSOCIATED_KMS``
    (5,000 km/s) of z_em, an absorber that may belong to the quasar itself. Set on the spectrum
    row (at its λ2796) and on each absorber of a multi-absorber model.
    """

    LOW_SNR = 1 << 16
    NEAR_EDGE = 1 << 17
    NEAR_MASKED = 1 << 18
    NOT_NORMALISED = 1 << 19
    IN_FOREST = 1 << 20
    ASSOCIATED = 1 << 21


class NormalisationWarning(UserWarning):
    """Spectra given as continuum-normalised do not look it (DetectionFlag.NOT_NORMALISED)."""


LOW_SNR_LIMIT: float = 3.0
# A normalised spectrum's usable pixels have a median near 1 (0.5-0.9 in the Lyα forest); flux in
# physical units or counts lies far outside this range.
NORMALISED_MEDIAN_RANGE: tuple[float, float] = (0.2, 5.0)
ASSOCIATED_KMS: float = 5000.0  # |Δv| of an associated absorber from z_em
LYA_REST: float = 1215.67  # Å, the Lyα forest's red end in the quasar's rest frame
EDGE_PIXELS: int = 10  # 10 pixels of Δlnλ = 1/20000: 2-3.4 Å, a few times a line's core width
assert not any(int(b) & int(f) for b in DetectionFlag for f in SpectrumFlag)

ARM_MISSING = (
    SpectrumFlag.ARM_MISSING_BLUE,
    SpectrumFlag.ARM_MISSING_GREEN,
    SpectrumFlag.ARM_MISSING_RED,
)

__all__ = [
    "ARM_MISSING",
    "ASSOCIATED_KMS",
    "EDGE_PIXELS",
    "LOW_SNR_LIMIT",
    "LYA_REST",
    "NORMALISED_MEDIAN_RANGE",
    "DetectionFlag",
    "NormalisationWarning",
    "PixelFlag",
    "SpectrumFlag",
]
