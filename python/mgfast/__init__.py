"""mgfast: find intervening MgII absorbers in 4MOST high-resolution quasar spectra.

Available now: the spectral grid (``mgfast.grid``) and preprocessing onto it
(``mgfast.preprocess``), on CPU and, when built with CUDA, on a GPU. The simulator, the
networks and the Detector follow (see README.md).
"""

from __future__ import annotations

from . import _core, grid
from .flags import PixelFlag, SpectrumFlag
from .preprocess import ContinuumOptions, Preprocessed, lsf_degrade, preprocess

__version__: str = _core.__version__


def cuda_device_count() -> int:
    """CUDA devices usable by this build (0 when built without CUDA or without a GPU)."""
    return int(_core.cuda_device_count())


__all__ = [
    "ContinuumOptions",
    "PixelFlag",
    "Preprocessed",
    "SpectrumFlag",
    "__version__",
    "cuda_device_count",
    "grid",
    "lsf_degrade",
    "preprocess",
]
