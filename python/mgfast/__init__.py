"""mgfast: find intervening MgII absorbers in 4MOST high-resolution quasar spectra.

Available now: the spectral grid (``mgfast.grid``), preprocessing onto it (``mgfast.preprocess``)
and the simulator (``mgfast.simulate``), on CPU and, when built with CUDA, on a GPU. The networks
and the Detector follow (see README.md).
"""

from __future__ import annotations

from . import _core, grid
from .detector import Detections, Detector
from .engine import CpuBackend
from .flags import PixelFlag, SpectrumFlag
from .matched_filter import MatchResult, match
from .model import Model, load_model
from .preprocess import ContinuumOptions, Preprocessed, lsf_degrade, preprocess
from .simulate import Realism, Simulation, simulate, simulate_stream

__version__: str = _core.__version__


def cuda_device_count() -> int:
    """CUDA devices usable by this build (0 when built without CUDA or without a GPU)."""
    return int(_core.cuda_device_count())


__all__ = [
    "ContinuumOptions",
    "CpuBackend",
    "Detections",
    "Detector",
    "MatchResult",
    "Model",
    "PixelFlag",
    "Preprocessed",
    "Realism",
    "Simulation",
    "SpectrumFlag",
    "__version__",
    "cuda_device_count",
    "grid",
    "load_model",
    "lsf_degrade",
    "match",
    "preprocess",
    "simulate",
    "simulate_stream",
]
