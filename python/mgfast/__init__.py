"""mgfast: find intervening MgII absorbers in 4MOST high-resolution quasar spectra.

``mgfast.Detector`` finds them (a trained network, or the classical matched filter), in arrays
or in files (``detect_files``; ``mgfast.io`` reads 4MOST, ESO, SDSS, DESI and generic files);
``mgfast.preprocess`` brings any spectrum onto the 4MOST grid (``mgfast.grid``); ``mgfast.simulate``
makes mock spectra with known truth. See README.md.
"""

from __future__ import annotations

from ._preload import preload_onednn

preload_onednn()

from . import _core, ew, grid, io
from .catalog import Catalog
from .cpp_api import get_cmake_dir
from .detector import Detections, Detector
from .engine import CpuBackend
from .flags import DetectionFlag, NormalisationWarning, PixelFlag, SpectrumFlag
from .matched_filter import MatchResult, match
from .model import Model, load_model
from .preprocess import ContinuumOptions, Preprocessed, lsf_degrade, preprocess
from .simulate import Realism, Simulation, simulate, simulate_stream

__version__: str = _core.__version__


def cuda_device_count() -> int:
    """CUDA devices usable by this build (0 when built without CUDA or without a GPU)."""
    return int(_core.cuda_device_count())


__all__ = [
    "Catalog",
    "ContinuumOptions",
    "CpuBackend",
    "DetectionFlag",
    "Detections",
    "Detector",
    "MatchResult",
    "Model",
    "NormalisationWarning",
    "PixelFlag",
    "Preprocessed",
    "Realism",
    "Simulation",
    "SpectrumFlag",
    "__version__",
    "cuda_device_count",
    "ew",
    "get_cmake_dir",
    "grid",
    "io",
    "load_model",
    "lsf_degrade",
    "match",
    "preprocess",
    "simulate",
    "simulate_stream",
]
