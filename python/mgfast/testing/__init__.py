"""Synthetic quasar spectra with known truth, for tests, examples and the demo.

Deliberately simple and analytic (power-law continuum, Gaussian broad emission lines, Gaussian
absorption lines), so that every quantity a test checks has an exact value. This is not the
survey simulator: that lives in the core and models the paper's absorber population.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import _core, grid
from ..atomic import MGII_2796, MGII_2803

C_KMS = 299792.458

# Broad emission lines of a quasar (rest vacuum Å, peak relative to the continuum at the line,
# FWHM km/s): the simulator's table (src/core/simulate/simulate.hpp, after Vanden Berk et al. 2001).
EMISSION_LINES: tuple[tuple[float, float, float], ...] = tuple(
    (lam, peak, fwhm) for lam, peak, fwhm in _core.QUASAR_EMISSION_LINES
)


def away_from_line_cores(z_em: float, z_abs: float) -> np.ndarray:
    """Grid pixels farther than half a FWHM from every emission-line peak of a quasar at z_em
    and more than 3 Å from the MgII doublet at z_abs: where a continuum fit is judged."""
    w = grid.wavelength()
    away = np.ones(w.size, bool)
    for lam, _, fwhm in EMISSION_LINES:
        mu = lam * (1 + z_em)
        away &= np.abs(w - mu) > 0.5 * fwhm / C_KMS * mu
    for line in (MGII_2796, MGII_2803):
        away &= np.abs(w - line.wavelength * (1 + z_abs)) > 3.0
    return away


def measure_doublet_ews(flux: np.ndarray, lam2796: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Rest EW2796 and EW2803 (N, 2) of normalised spectra on the grid, by direct integration of
    1 − flux over each line's half of the doublet (split at the midpoint, to 500 km/s out)."""
    w = grid.wavelength()
    dw = np.diff(grid.edges(), axis=1)[:, 0]
    out = np.zeros((len(lam2796), 2))
    for i, (lam, zz) in enumerate(zip(lam2796, z, strict=True)):
        lam2 = lam * MGII_2803.wavelength / MGII_2796.wavelength
        mid = np.sqrt(lam * lam2)
        a = (1.0 - flux[i]) * dw
        m1 = (w < mid) & (w > lam * np.exp(-500 / C_KMS))
        m2 = (w > mid) & (w < lam2 * np.exp(500 / C_KMS))
        out[i] = a[m1].sum() / (1 + zz), a[m2].sum() / (1 + zz)
    return out


def log_grid(lo: float, hi: float, resolving_power: float, pix_per_resel: float) -> np.ndarray:
    """Wavelengths (Å) uniform in ln λ, pix_per_resel pixels per resolution element λ/R."""
    step = 1.0 / (resolving_power * pix_per_resel)
    wave: np.ndarray = lo * np.exp(np.arange(int(np.log(hi / lo) / step) + 1) * step)
    return wave


def quasar_continuum(wave: np.ndarray, z_em: float, alpha: float = -1.5) -> np.ndarray:
    """Power law f_λ ∝ λ^(alpha) plus Gaussian broad emission lines at redshift z_em."""
    cont = (wave / 5000.0) ** alpha
    for lam, peak, fwhm in EMISSION_LINES:
        mu = lam * (1 + z_em)
        sig = mu * fwhm / C_KMS / 2.3548200450309493
        cont = cont + peak * (mu / 5000.0) ** alpha * np.exp(-0.5 * ((wave - mu) / sig) ** 2)
    return cont


def _ew_of_tau(tau0: float) -> float:
    """EW, in units of the Gaussian sigma, of exp(-tau0 · exp(-x²/2))."""
    x = np.linspace(-14.0, 14.0, 8001)
    return float(np.sum(1.0 - np.exp(-tau0 * np.exp(-0.5 * x * x))) * (x[1] - x[0]))


def gaussian_line(wave: np.ndarray, center: float, ew: float, fwhm_kms: float) -> np.ndarray:
    """Transmission exp(-τ) of a line whose optical depth τ is a Gaussian of the given FWHM,
    scaled so that the observed equivalent width is ew (Å). Thin lines are Gaussian dips; strong
    ones saturate (flat-bottomed), as real absorbers do."""
    sig = center * fwhm_kms / C_KMS / 2.3548200450309493
    target = ew / sig
    lo, hi = -14.0, 25.0  # ln τ0
    if _ew_of_tau(np.exp(hi)) < target:
        raise ValueError(f"ew: {ew} Å is too large for FWHM {fwhm_kms} km/s; widen the line")
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if _ew_of_tau(np.exp(mid)) < target else (lo, mid)
    tau0 = np.exp(0.5 * (lo + hi))
    t: np.ndarray = np.exp(-tau0 * np.exp(-0.5 * ((wave - center) / sig) ** 2))
    return t


def mgii_doublet(
    wave: np.ndarray, z: float, ew2796_rest: float, ratio: float = 1.2, fwhm_kms: float = 30.0
) -> np.ndarray:
    """Transmission of a MgII doublet at redshift z with rest EW2796 and EW2796/EW2803 = ratio."""
    t = gaussian_line(wave, MGII_2796.wavelength * (1 + z), ew2796_rest * (1 + z), fwhm_kms)
    t2 = gaussian_line(
        wave, MGII_2803.wavelength * (1 + z), ew2796_rest / ratio * (1 + z), fwhm_kms
    )
    both: np.ndarray = t * t2
    return both


@dataclass
class SyntheticQuasar:
    wave: np.ndarray  # (n,) Å
    flux: np.ndarray  # (N, n) float32, noisy
    err: np.ndarray  # (N, n) float32
    continuum: np.ndarray  # (n,) true continuum
    transmission: np.ndarray  # (n,) true absorption (1 = none)
    resolution: float
    z_abs: float


def synthetic_quasar(
    n: int = 1,
    *,
    z_em: float = 1.25,
    z_abs: float = 0.95,
    ew2796_rest: float = 0.3,
    snr: float = 10.0,
    resolution: float = 20000.0,
    pix_per_resel: float = 2.0,
    absorber_fwhm_kms: float = 20.0,
    seed: int = 0,
) -> SyntheticQuasar:
    """n noisy realisations of one quasar with one MgII doublet, at native resolution.

    The absorber is given at the input resolution already (its FWHM is the LSF's at
    ``resolution`` added in quadrature to ``absorber_fwhm_kms``). SNR is per 4MOST pixel at the
    continuum level when ``resolution`` is 20000; a finer input is smoothed further by the LSF,
    which raises the SNR per pixel after preprocessing.
    """
    wave = log_grid(3850.0, 6870.0, resolution, pix_per_resel)
    cont = quasar_continuum(wave, z_em)
    fwhm = float(np.hypot(absorber_fwhm_kms, C_KMS / resolution))
    trans = (
        mgii_doublet(wave, z_abs, ew2796_rest, fwhm_kms=fwhm)
        if ew2796_rest > 0
        else np.ones_like(wave)
    )
    # Noise per native pixel such that a grid pixel (several native pixels) has the given SNR.
    pix_ratio = resolution * pix_per_resel / grid.RESOLVING_POWER
    sigma = cont / snr * np.sqrt(pix_ratio)
    rng = np.random.default_rng(seed)
    flux = cont * trans + rng.standard_normal((n, wave.size)) * sigma
    err = np.broadcast_to(sigma, flux.shape)
    return SyntheticQuasar(
        wave, flux.astype(np.float32), err.astype(np.float32), cont, trans, resolution, z_abs
    )


__all__ = [
    "EMISSION_LINES",
    "SyntheticQuasar",
    "away_from_line_cores",
    "gaussian_line",
    "log_grid",
    "measure_doublet_ews",
    "mgii_doublet",
    "quasar_continuum",
    "synthetic_quasar",
]
