"""Equivalent widths measured on the spectrum, and their combination with the network's.

The multi-absorber network states a rest EW2796 and EW2803 with σ for every absorber it finds,
learnt from the simulator's profiles. Where the normalised spectrum is at hand (the host path of
``Detector.detect``), mgfast also measures them the way an astronomer would, independent of any
line-profile model, and combines the two:

1. **Windows.** Around the absorber's redshift z, the λ2796 window runs from
   λ2796 (1 + z) − h to the doublet's midpoint and the λ2803 window from the midpoint to
   λ2803 (1 + z) + h, with h = clip(``half_factor`` × EW_network, ``half_min``, ``half_max``)
   rest Å: wide enough for the broad, saturated profiles of strong systems, never reaching past
   the other line of the doublet. Absorption of a blended doublet is split at the midpoint.
2. **Local continuum level.** The median flux in side bands ``side`` rest Å wide beyond both
   windows: it absorbs a continuum that is off by a few per cent (the median keeps unrelated
   lines in the bands from biasing it). Its noise (1.25 σ/√n) is carried into the EW's σ.
3. **Boxcar EW.** EW = Σ (1 − f/level) Δλ / (1 + z) over the window's usable pixels, scaled up
   by the fraction of the window they cover (masked pixels), with σ from the inverse variance.
   A window less than ``min_coverage`` covered (arm gaps and ends, masked stretches) is not
   measured (NaN).
4. **Combination.** The inverse-variance mean of the network's and the measured EW, unless they
   disagree by more than ``reject`` combined σ (a blend, an unrelated line, a sky residual in the
   window): then the network's value stands. σ of the mean: 1/√(Σ 1/σ²).

Everything is vectorised over absorbers (one gather of each absorber's pixels), at a few μs
per absorber.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from . import grid
from .absorbers import Absorbers
from .atomic import MGII_2796, MGII_2803

L2796 = MGII_2796.wavelength
L2803 = MGII_2803.wavelength
HALF_SPLIT = 0.5 * (L2803 - L2796)  # rest Å from either line to the doublet's midpoint
_CHUNK = 4096  # absorbers per gather


@dataclass(frozen=True)
class EWOptions:
    """How the EWs are measured (rest Å) and combined with the network's; see the module."""

    half_factor: float = 1.0
    half_min: float = 2.0
    half_max: float = 3.5
    side: float = 6.0
    min_coverage: float = 0.7
    reject: float = 3.0
    floor: float = 0.01
    correlation: float = 0.5

    def __post_init__(self) -> None:
        if not (0.0 < self.half_min <= self.half_max) or self.half_factor < 0.0:
            raise ValueError("EWOptions: need 0 < half_min <= half_max and half_factor >= 0")
        if self.side <= 0.0 or not (0.0 < self.min_coverage <= 1.0) or self.reject <= 0.0:
            raise ValueError("EWOptions: need side > 0, 0 < min_coverage <= 1 and reject > 0")
        if self.floor < 0.0 or not (0.0 <= self.correlation < 1.0):
            raise ValueError("EWOptions: need floor >= 0 and 0 <= correlation < 1")


_LAM = grid.wavelength_of(np.arange(grid.N_PIX))
_DLAM = _LAM * grid.DLNLAMBDA  # pixel widths, Å


def measure(
    flux: npt.ArrayLike,
    ivar: npt.ArrayLike,
    spectrum: npt.ArrayLike,
    z: npt.ArrayLike,
    ew_guess: npt.ArrayLike,
    options: EWOptions | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Rest EWs of the MgII doublet measured on normalised spectra on mgfast.grid.

    flux, ivar: (N, N_PIX) normalised flux and its inverse variance (0: masked). spectrum, z,
    ew_guess: per absorber its row, redshift and a first EW2796 (sets the window). Returns ew
    and sigma, each (n_absorbers, 2) float64: λ2796 then λ2803; NaN where not measured."""
    o = options or EWOptions()
    flux = np.asarray(flux)
    ivar = np.asarray(ivar)
    if flux.ndim != 2 or flux.shape[1] != grid.N_PIX or ivar.shape != flux.shape:
        raise ValueError(
            f"flux and ivar: expected (N, {grid.N_PIX}) arrays of one shape, got "
            f"{flux.shape} and {ivar.shape}"
        )
    spectrum = np.asarray(spectrum, np.int64)
    z = np.asarray(z, np.float64)
    guess = np.asarray(ew_guess, np.float64)
    n = spectrum.size
    ew = np.full((n, 2), np.nan)
    sig = np.full((n, 2), np.nan)
    for s in range(0, n, _CHUNK):
        e = slice(s, min(n, s + _CHUNK))
        ew[e], sig[e] = _measure_chunk(flux, ivar, spectrum[e], z[e], guess[e], o)
    return ew, sig


def _measure_chunk(flux, ivar, spectrum, z, guess, o: EWOptions):  # type: ignore[no-untyped-def]
    n = spectrum.size
    out_ew = np.full((n, 2), np.nan)
    out_sig = np.full((n, 2), np.nan)
    zp1 = 1.0 + z
    h = np.clip(o.half_factor * np.nan_to_num(guess, nan=0.0), o.half_min, o.half_max)
    c1, c2 = L2796 * zp1, L2803 * zp1
    # edges (observed Å): blue side | line 2796 | line 2803 | red side
    edges = np.stack(
        [
            c1 - (h + o.side) * zp1,
            c1 - h * zp1,
            (L2796 + HALF_SPLIT) * zp1,
            c2 + h * zp1,
            c2 + (h + o.side) * zp1,
        ],
        axis=1,
    )
    ok = np.isfinite(z) & (spectrum >= 0) & (spectrum < flux.shape[0])
    if not ok.any():
        return out_ew, out_sig
    idx = np.searchsorted(_LAM, edges)  # first pixel at or above each edge
    start, stop = idx[:, 0], idx[:, 4]
    width = int(np.max(np.where(ok, stop - start, 0)))
    if width == 0:
        return out_ew, out_sig
    pix = start[:, None] + np.arange(width)[None, :]
    inside = pix < np.where(ok, stop, start)[:, None]
    pix = np.minimum(pix, grid.N_PIX - 1)
    row = np.where(ok, spectrum, 0)[:, None]
    f = flux[row, pix].astype(np.float64)
    iv = ivar[row, pix].astype(np.float64)
    good = inside & (iv > 0) & np.isfinite(f)
    lam = _LAM[pix]
    dl = _DLAM[pix]
    region = (lam[:, :, None] >= edges[:, None, :]).sum(axis=2)  # 1..4 inside the span
    var = np.where(good, 1.0 / np.where(good, iv, 1.0), 0.0)
    # the local continuum level: median of the side bands' usable pixels
    side = good & ((region == 1) | (region == 4))
    n_side = side.sum(axis=1)
    sf = np.where(side, f, np.nan)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows: no side band
        level = np.where(n_side >= 5, np.nanmedian(sf, axis=1), np.nan)
        sigma_pix = np.sqrt(np.where(side, var, 0.0).sum(axis=1) / np.maximum(n_side, 1))
        level_err = 1.2533 * sigma_pix / np.sqrt(np.maximum(n_side, 1))
    for j, r in enumerate((2, 3)):
        in_win = region == r
        use = good & in_win
        # expected pixels from the window's width in ln λ (arm gaps count as missing)
        expected = np.log(edges[:, r] / edges[:, r - 1]) / grid.DLNLAMBDA
        n_use, n_win = use.sum(axis=1), in_win.sum(axis=1)
        cover = n_use / np.maximum(expected, 1e-9)
        with np.errstate(all="ignore"):
            # masked pixels are made up for from the window's pixel count, a window partly off
            # its arm from the expected count (the two agree within a pixel otherwise)
            frac = np.where(n_win >= expected - 1.0, n_win, expected) / n_use
            absorbed = np.where(use, (1.0 - f / level[:, None]) * dl, 0.0).sum(axis=1)
            var_sum = np.where(use, dl * dl * var, 0.0).sum(axis=1) / level**2
            width_a = np.where(use, dl, 0.0).sum(axis=1)
            ew_j = absorbed * frac / zp1
            # σ: the pixels' noise, the level's, and a floor for the profile's wings beyond the
            # window and structure in the side bands (a fraction of the EW)
            sig_j = np.sqrt(
                (var_sum * frac**2 + (level_err / level * width_a * frac) ** 2) / zp1**2
                + (o.floor * ew_j) ** 2
            )
        valid = ok & (cover >= o.min_coverage) & np.isfinite(level) & (level > 0)
        out_ew[valid, j] = ew_j[valid]
        out_sig[valid, j] = sig_j[valid]
    return out_ew, out_sig


def combine(
    net: npt.ArrayLike,
    net_sigma: npt.ArrayLike,
    measured: npt.ArrayLike,
    measured_sigma: npt.ArrayLike,
    reject: float = EWOptions.reject,
    correlation: float = EWOptions.correlation,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inverse-variance mean of the network's and the measured EW where both exist and agree
    within ``reject`` combined σ and their mean is positive; the network's value elsewhere. Both read the same pixels, so
    their errors are correlated: the mean's σ counts a ``correlation`` between them. Returns
    (ew, sigma, used): used says where the measurement entered."""
    a = np.asarray(net, np.float64)
    sa = np.asarray(net_sigma, np.float64)
    b = np.asarray(measured, np.float64)
    sb = np.asarray(measured_sigma, np.float64)
    with np.errstate(all="ignore"):
        used = (
            np.isfinite(b)
            & np.isfinite(sb)
            & (sb > 0)
            & np.isfinite(a)
            & (sa > 0)
            & (np.abs(a - b) <= reject * np.sqrt(sa * sa + sb * sb))
        )
        wa, wb = 1.0 / (sa * sa), np.where(used, 1.0 / (sb * sb), 0.0)
        mean = (wa * a + wb * np.where(used, b, 0.0)) / (wa + wb)
        used &= mean > 0.0  # a line found has a positive EW: a mean at or below 0 says noise
        wb = np.where(used, wb, 0.0)
        ew = np.where(used, mean, a)
        cov = 2.0 * correlation * wa * wb * sa * np.where(used, sb, 0.0)
        sigma = np.where(used, np.sqrt(wa + wb + cov) / (wa + wb), sa)
    return ew, sigma, used


def apply(
    absorbers: Absorbers, flux: npt.ArrayLike, ivar: npt.ArrayLike, options: EWOptions | None = None
) -> Absorbers:
    """The absorbers with their EWs measured on the (normalised, on-grid) spectra they were found
    in and combined with the network's: ew2796/ew2803 and their σ become the combination, the
    measurements themselves go to the *_measured columns, ew_measured says where λ2796's entered."""
    o = options or EWOptions()
    ew, sig = measure(flux, ivar, absorbers.spectrum, absorbers.z, absorbers.ew2796, o)
    cols = absorbers.columns()
    for j, line in enumerate(("ew2796", "ew2803")):
        best, best_sig, used = combine(
            cols[line], cols[line + "_err"], ew[:, j], sig[:, j], o.reject, o.correlation
        )
        cols[line], cols[line + "_err"] = best.astype(np.float32), best_sig.astype(np.float32)
        cols[line + "_measured"] = ew[:, j].astype(np.float32)
        cols[line + "_measured_err"] = sig[:, j].astype(np.float32)
        if j == 0:
            cols["ew_measured"] = used
    return Absorbers(**cols)
