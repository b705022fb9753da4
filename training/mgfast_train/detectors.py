"""The detectors the evaluations compare, as plain functions of preprocessed spectra: a Keras
model, a model directory through the package, the matched filter."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

import mgfast
from mgfast.model import FLUX_ONLY, input_features

from .metrics import NO_ABSORBER

# (preprocessed flux, the simulator's err, preprocessed ivar) -> (score, λ2796, threshold)
Detector = Callable[[np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray, float]]


def keras_detector(path: str, arch: str) -> Detector:
    import keras
    from decode import decode
    from models import input_channels

    net = keras.saving.load_model(path, compile=False)
    channels = input_channels(net)

    def run(
        flux: np.ndarray, err: np.ndarray, ivar: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, float]:
        if channels != FLUX_ONLY:  # what the engines compute from the preprocessed spectra
            flux = input_features(flux, ivar, channels, channels_last=True)
        prob, lam = decode(arch, net.predict(flux, batch_size=512, verbose=0))
        return prob, lam, 0.5

    return run


def package_detector(model_dir: str, precision: str = "fp32") -> Detector:
    """An exported model run as users run it (mgfast.Detector, the CPU engine at `precision`),
    scored by its per-spectrum summary: for a multi-absorber model the most probable absorber
    (probability and λ2796), the paper's 5358 Å label where none was found."""

    det = mgfast.Detector(model=model_dir, threshold=0.5, precision=precision)
    noise = det.model.input_channels != FLUX_ONLY  # a model that reads the errors gets them

    def run(
        flux: np.ndarray, err: np.ndarray, ivar: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, float]:
        prob, lam = [], []
        for i in range(0, len(flux), 5000):  # in chunks: the maps of 70,000 spectra are 3 GB
            res = det.detect(flux[i : i + 5000], ivar=ivar[i : i + 5000] if noise else None)
            prob.append(res.probability)
            lam.append(np.where(np.isfinite(res.wavelength), res.wavelength, NO_ABSORBER))
        return np.concatenate(prob), np.concatenate(lam), 0.5

    return run


def matched_filter_detector() -> Detector:
    def run(
        flux: np.ndarray, err: np.ndarray, ivar: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, float]:
        with np.errstate(divide="ignore"):
            ivar = np.where(err > 0, 1.0 / err.astype(np.float64) ** 2, 0.0).astype(np.float32)
        r = mgfast.match(flux, ivar)
        return r.significance, r.lambda2796, float(mgfast.matched_filter.DEFAULT_THRESHOLD)

    return run
