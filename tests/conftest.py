"""Shared fixtures: the devices preprocessing can run on here."""

from __future__ import annotations

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
