"""Shared helpers: the devices preprocessing can run on here, and spectra for the engines."""

from __future__ import annotations

import numpy as np
import pytest

import mgfast

CUDA_REASON = "needs a CUDA device (none visible to this build)"


def devices() -> list:
    return [
        "cpu",
        pytest.param(
            "cuda:0",
            marks=[
                pytest.mark.cuda,
                pytest.mark.skipif(mgfast.cuda_device_count() == 0, reason=CUDA_REASON),
            ],
        ),
    ]


def engine_spectra(n: int, seed: int = 1) -> np.ndarray:
    """The simulator's paper-like spectra (SNR 3-50, 80 % with an absorber), every seventh with a
    continuum offset so that a random network's outputs spread: input for engine comparisons."""
    f = mgfast.simulate(n, seed=seed).flux
    f[::7] *= np.float32(1.3)
    return f
