"""The flags a detection gets from its spectrum: quality (LOW_SNR, NEAR_EDGE, NEAR_MASKED), z_em
(IN_FOREST, ASSOCIATED; and the pixels masked beyond z_em), and the normalisation check."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from . import grid
from .atomic import C_KMS, MGII_2796, MGII_2803
from .flags import (
    ASSOCIATED_KMS,
    EDGE_PIXELS,
    LOW_SNR_LIMIT,
    LYA_REST,
    MASK_REASONS,
    NORMALISED_MEDIAN_RANGE,
    DetectionFlag,
    NormalisationWarning,
    PixelFlag,
)


def check_normalised(flux: np.ndarray, pixmask: np.ndarray) -> np.ndarray:
    """DetectionFlag.NOT_NORMALISED where spectra given as normalised do not look it: more than
    half of every 7th usable pixel below or above NORMALISED_MEDIAN_RANGE (their median outside
    it), with one warning for them all. Counts, not a median: cheap on every call."""
    lo, hi = NORMALISED_MEDIAN_RANGE
    f = flux[:, ::7]
    usable = pixmask[:, ::7] == 0
    half = usable.sum(axis=1) / 2.0
    bad = (np.sum(usable & (f < lo), axis=1) > half) | (np.sum(usable & (f > hi), axis=1) > half)
    if bad.any():
        example = float(np.median(f[bad][0][usable[bad][0]]))
        warnings.warn(
            f"{int(bad.sum())} of {len(bad)} spectra given as continuum-normalised do not look it "
            f"(median flux of their usable pixels outside [{lo:g}, {hi:g}], e.g. {example:.3g}); "
            "they were searched as given and are flagged NOT_NORMALISED: pass normalised=False "
            "to fit their continuum",
            NormalisationWarning,
            stacklevel=3,
        )
    return np.asarray(np.where(bad, np.uint32(DetectionFlag.NOT_NORMALISED), np.uint32(0)))


def check_z_em(z_em: Any, n: int) -> np.ndarray | None:
    """z_em as (n,) float64 (NaN: unknown), or None; ValueError for a bad value or shape."""
    if z_em is None:
        return None
    try:
        z = np.asarray(z_em, np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"z_em: expected a number or an array of numbers, got {z_em!r}") from None
    if z.ndim == 0:
        z = np.full(n, float(z))
    if z.shape != (n,):
        raise ValueError(f"z_em: {z.shape[0] if z.ndim == 1 else z.shape} values for {n} spectra")
    bad = np.isinf(z) | (z < 0)
    if bad.any():
        raise ValueError(f"z_em: must be >= 0 or NaN (unknown), got {z[bad][0]!r}")
    return z


def doppler(kms: float) -> float:
    return float(np.sqrt((1 + kms / C_KMS) / (1 - kms / C_KMS)))


def mask_beyond_z_em(
    z_em: np.ndarray, flux: np.ndarray, ivar: np.ndarray, pixmask: np.ndarray
) -> np.ndarray:
    """Mask, in place, the pixels redward of λ2803 at ASSOCIATED_KMS above z_em; returns the
    masked pixels per spectrum and arm."""
    cut = MGII_2803.wavelength * (1 + z_em) * doppler(ASSOCIATED_KMS)  # NaN: nothing cut
    beyond = grid.wavelength()[None, :] > cut[:, None]
    flux[beyond] = 1.0
    ivar[beyond] = 0.0
    np.bitwise_or(pixmask, np.uint8(PixelFlag.BEYOND_ZEM), out=pixmask, where=beyond)
    masked = pixmask != 0
    return np.stack([masked[:, a.start : a.stop].sum(axis=1) for a in grid.ARMS], axis=1)


def masked_by_reason(pixmask: np.ndarray) -> np.ndarray:
    """(N, len(MASK_REASONS)) float32: the fraction of the grid's pixels masked for each reason.
    A pixel masked for several (a bad input pixel in an arm whose continuum then failed) counts
    once, under its lowest PixelFlag bit (the first thing that went wrong there), so a row sums
    to the spectrum's masked fraction."""
    pm = np.atleast_2d(pixmask).astype(np.uint8, copy=False)
    lowest = pm & (~pm + np.uint8(1))  # the lowest set bit (0 for a good pixel)
    counts = np.stack([np.count_nonzero(lowest == np.uint8(r), axis=1) for r in MASK_REASONS],
                      axis=1)  # fmt: skip
    return (counts / grid.N_PIX).astype(np.float32)


def z_em_flags(lam: np.ndarray, z_em: np.ndarray) -> np.ndarray:
    """DetectionFlag IN_FOREST and ASSOCIATED of λ2796 values given z_em (0 where either is
    NaN)."""
    z_abs = lam / MGII_2796.wavelength - 1.0
    with np.errstate(invalid="ignore"):
        forest = lam < LYA_REST * (1 + z_em)
        assoc = np.abs(np.log((1 + z_abs) / (1 + z_em))) <= np.log(doppler(ASSOCIATED_KMS))
    return (np.where(forest, int(DetectionFlag.IN_FOREST), 0)
            | np.where(assoc, int(DetectionFlag.ASSOCIATED), 0)).astype(np.uint32)  # fmt: skip


def quality_flags(snr: np.ndarray, pixmask: np.ndarray, lam: np.ndarray) -> np.ndarray:
    """The DetectionFlag bits of spectra (2D pixmask) given their SNR and λ2796."""
    flags = np.where(snr < LOW_SNR_LIMIT, int(DetectionFlag.LOW_SNR), 0).astype(np.uint32)
    rows = np.flatnonzero(np.isfinite(lam))
    if rows.size:
        ratio = MGII_2803.wavelength / MGII_2796.wavelength
        offsets = np.arange(-EDGE_PIXELS, EDGE_PIXELS + 1)
        near_edge = np.zeros(rows.size, bool)
        near_mask = np.zeros(rows.size, bool)
        for line in (lam[rows], lam[rows] * ratio):
            p = grid.pixel_of(line)
            ok = np.isfinite(p)
            pix = np.clip(np.rint(np.where(ok, p, 0)).astype(np.int64), 0, grid.N_PIX - 1)
            near_edge |= ~ok | (grid.edge_distance()[pix] < EDGE_PIXELS)
            window = np.clip(pix[:, None] + offsets, 0, grid.N_PIX - 1)
            near_mask |= ok & (pixmask[rows[:, None], window] != 0).any(axis=1)
        flags[rows] |= np.where(near_edge, int(DetectionFlag.NEAR_EDGE), 0).astype(np.uint32)
        flags[rows] |= np.where(near_mask, int(DetectionFlag.NEAR_MASKED), 0).astype(np.uint32)
    return flags
