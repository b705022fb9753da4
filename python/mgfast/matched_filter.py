"""The classical MgII doublet matched filter: the baseline every network must beat.

Validation happens here (each problem a ``ValueError`` naming the argument); the work happens in
C++ (threads) or CUDA, with the GIL released. See docs/matched_filter.md for the method, the
default threshold and where the filter fails.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from . import _core, grid
from .options import parse_device
from .preprocess import real_array

DEFAULT_WIDTHS: tuple[float, ...] = (0.6, 1.2, 2.5, 5.0)  # template Gaussian σ, pixels
# The significance pure Gaussian noise reaches in 1 % of spectra with the default widths and ratio
# test (measured on 40,000 noise spectra, docs/matched_filter.md; a test checks it stays <= 2 %).
DEFAULT_THRESHOLD: float = 4.8
DEFAULT_TOP_K: int = 4
MAX_TOP_K: int = _core.MF_MAX_TOP_K
MAX_WIDTHS: int = _core.MF_MAX_WIDTHS
WIDTH_RANGE: tuple[float, float] = (_core.MF_MIN_WIDTH, _core.MF_MAX_WIDTH)
# EW2796/EW2803 of an optically thin doublet (f λ² ratio, ≈ 2); a saturated one has 1.
THIN_RATIO: float = _core.MF_THIN_RATIO


@dataclass(frozen=True)
class MatchResult:
    """Matched-filter detections. Per-spectrum arrays are (N,), candidate arrays (N, top_k);
    one spectrum in gives () and (top_k,).

    The best candidate is column 0 of the candidate arrays. A spectrum (or candidate slot) without
    any acceptable doublet position has significance 0, NaN wavelength, redshift, EW and width.
    """

    significance: np.ndarray  # float32: doublet amplitude over its error, of the best candidate
    lambda2796: np.ndarray  # float64: observed λ2796, vacuum Å
    redshift: np.ndarray  # float64
    ew2796: np.ndarray  # float32: rest-frame EW of λ2796, Å (rough: Gaussian template fit)
    detected: np.ndarray  # bool: significance >= threshold
    width: np.ndarray  # float32: σ (pixels) of the best template
    candidate_significance: np.ndarray  # the top_k candidates, by decreasing significance,
    candidate_lambda2796: np.ndarray  # each more than two doublet spacings from the others
    candidate_redshift: np.ndarray
    candidate_ew2796: np.ndarray
    candidate_width: np.ndarray
    threshold: float

    @property
    def candidate_detected(self) -> np.ndarray:
        return self.candidate_significance >= self.threshold


def _real(x: object, name: str) -> float:
    if isinstance(x, bool) or not isinstance(x, int | float | np.integer | np.floating):
        raise ValueError(f"{name}: expected a real number, got {x!r}")
    v = float(x)
    if not np.isfinite(v):
        raise ValueError(f"{name}: must be finite, got {v}")
    return v


def match(
    flux: npt.ArrayLike,
    ivar: npt.ArrayLike | None = None,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    widths: Sequence[float] = DEFAULT_WIDTHS,
    top_k: int = DEFAULT_TOP_K,
    ratio_range: tuple[float, float] = (0.8, 2.2),
    ratio_sigma: float = 2.0,
    device: str = "cpu",
    threads: int = 0,
) -> MatchResult:
    """Search spectra on the grid for MgII doublets with a matched filter.

    Parameters
    ----------
    flux : (N, N_PIX) or (N_PIX,) array
        Continuum-normalised flux on ``mgfast.grid`` (as ``mgfast.preprocess`` returns it).
        Masked pixels carry 1 (NaN is taken as masked too).
    ivar : array like flux, optional
        Inverse variance, 0 where masked. Without it (or for a spectrum whose ivar is 0
        everywhere) the noise is estimated per arm from the scatter of the flux, and pixels whose
        flux is exactly 1 are taken as masked.
    threshold : float
        Significance from which a candidate counts as detected (default: 1 % false positives per
        spectrum on pure noise).
    widths : sequence of float
        Gaussian σ of the line templates, pixels (one pixel is 15 km/s).
    top_k : int
        Candidates kept per spectrum, each more than two doublet spacings from the others.
    ratio_range, ratio_sigma : the fitted EW2796/EW2803 must be within ``ratio_sigma`` standard
        errors of ``ratio_range``, or the position is not a doublet (a lone line, a noise spike).
    device : "cpu" or "cuda[:N]"
    threads : int
        CPU threads (0: all).
    """
    single = np.ndim(flux) == 1
    f = real_array(flux, "flux", np.float32)
    if single:
        f = f[None, :]
    if f.ndim != 2 or f.shape[1] != grid.N_PIX:
        raise ValueError(
            f"flux: expected shape (N, {grid.N_PIX}) or ({grid.N_PIX},), spectra on mgfast.grid "
            f"(mgfast.preprocess puts them there), got {np.shape(flux)}"
        )
    iv = None
    if ivar is not None:
        iv = real_array(ivar, "ivar", np.float32)
        if single and iv.ndim == 1:
            iv = iv[None, :]
        if iv.shape != f.shape:
            raise ValueError(f"ivar: shape {np.shape(ivar)} differs from flux's {np.shape(flux)}")
        if not np.all(np.isfinite(iv)):
            raise ValueError("ivar: contains NaN or inf (give 0 for a masked pixel)")
        if np.any(iv < 0):
            raise ValueError("ivar: contains negative values (give 0 for a masked pixel)")
    thr = _real(threshold, "threshold")
    w = np.atleast_1d(np.asarray(widths, dtype=object))
    if w.ndim != 1 or not 1 <= w.size <= MAX_WIDTHS:
        raise ValueError(f"widths: expected 1 to {MAX_WIDTHS} template widths, got {widths!r}")
    w = np.array([_real(x, "widths") for x in w], dtype=np.float64)
    lo_w, hi_w = WIDTH_RANGE
    if np.any((w < lo_w) | (w > hi_w)):
        raise ValueError(f"widths: each σ must lie in [{lo_w}, {hi_w}] pixels, got {widths!r}")
    if isinstance(top_k, bool) or not isinstance(top_k, int | np.integer):
        raise ValueError(f"top_k: expected an integer, got {top_k!r}")
    if not 1 <= top_k <= MAX_TOP_K:
        raise ValueError(f"top_k: expected 1 to {MAX_TOP_K}, got {top_k}")
    rr = np.asarray(ratio_range, dtype=object)
    if rr.shape != (2,):
        raise ValueError(f"ratio_range: expected (low, high), got {ratio_range!r}")
    r_lo, r_hi = (_real(x, "ratio_range") for x in rr)
    if not 0 < r_lo < r_hi:
        raise ValueError(f"ratio_range: expected 0 < low < high, got {ratio_range!r}")
    r_sig = _real(ratio_sigma, "ratio_sigma")
    if r_sig < 0:
        raise ValueError(f"ratio_sigma: must be >= 0, got {r_sig}")
    dev = parse_device(device)
    if isinstance(threads, bool) or not isinstance(threads, int | np.integer) or threads < 0:
        raise ValueError(f"threads: expected an integer >= 0, got {threads!r}")

    options = _core.MatchedFilterOptions(
        widths=w.tolist(), top_k=int(top_k), ratio_lo=r_lo, ratio_hi=r_hi, ratio_sigma=r_sig
    )
    out = _core.matched_filter(f, iv, options, str(dev), int(threads))
    sig = out["significance"]
    idx = out["width"]
    cand_width = np.where(idx >= 0, w[np.clip(idx, 0, None)], np.nan).astype(np.float32)
    fields = dict(
        significance=sig[:, 0],
        lambda2796=out["lambda2796"][:, 0],
        redshift=out["redshift"][:, 0],
        ew2796=out["ew2796"][:, 0],
        detected=sig[:, 0] >= thr,
        width=cand_width[:, 0],
        candidate_significance=sig,
        candidate_lambda2796=out["lambda2796"],
        candidate_redshift=out["redshift"],
        candidate_ew2796=out["ew2796"],
        candidate_width=cand_width,
    )
    if single:
        fields = {k: v[0] for k, v in fields.items()}
    return MatchResult(**fields, threshold=thr)


__all__ = ["DEFAULT_THRESHOLD", "DEFAULT_WIDTHS", "MatchResult", "match"]
