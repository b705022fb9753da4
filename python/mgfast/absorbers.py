"""Every MgII absorber in a sightline: decoding the multi-absorber network's per-cell maps into
a list of absorbers, each with λ2796, z, rest EW2796 and EW2803 with their uncertainties and a
calibrated probability.

The network (mgfast_train.models, ``mgfast_multi``) gives per 4-pixel cell of the grid a logit
(an absorber's λ2796 lies in this cell) and five maps: the sub-cell offset (pixels) and the
ln scale of its Laplace error, ln EW2796 and its ln σ, ln EW2803 and its ln σ. Decoding:

1. cell probabilities p = sigmoid(logit);
2. candidates: cells that hold the largest p within ±``window`` cells (non-maximum suppression;
   the doublet's two lines are 13 cells apart, so a window of 3 keeps close systems apart);
3. score = min(1, p[c−1] + p[c] + p[c+1]) (an absorber near a cell boundary splits its
   probability between two cells), mapped through the model's calibration curve (isotonic, fitted
   on a fresh validation set at export) to the probability that the candidate is a real absorber;
4. λ2796 at pixel 4c + offset, σ(λ) from the Laplace scale (σ = √2 b pixels), z and σ(z) from
   λ2796; EW = exp(ln EW) with σ(EW) = EW · σ(ln EW).

Where the spectrum is at hand, mgfast.ew then measures the EWs on it and combines them with
these (``Detector(ew="combined")``, the default on host arrays).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from . import grid
from .atomic import MGII_2796

CELL = 4  # pixels per cell of the multi-absorber network's maps
CHANNELS = ("offset", "log_b_offset", "log_ew2796", "log_sigma2796", "log_ew2803", "log_sigma2803")
DEFAULT_WINDOW = 3
MIN_SCORE = 0.02  # candidates below this raw score are dropped before calibration


@dataclass(frozen=True)
class Absorbers:
    """One row per absorber found: ``spectrum`` is the row of the input it belongs to."""

    spectrum: np.ndarray  # int64
    probability: np.ndarray  # float32, calibrated
    score: np.ndarray  # float32, the raw network score (before calibration)
    lambda2796: np.ndarray  # float64, observed Å
    lambda2796_err: np.ndarray  # float64, Å
    z: np.ndarray  # float64
    z_err: np.ndarray  # float64
    ew2796: np.ndarray  # float32, rest Å
    ew2796_err: np.ndarray  # float32
    ew2803: np.ndarray  # float32, rest Å
    ew2803_err: np.ndarray  # float32
    # The EWs measured on the spectrum (mgfast.ew; NaN where not measured) and whether
    # ew2796/ew2803 above combine them with the network's (otherwise those are the network's).
    ew2796_measured: np.ndarray  # float32, rest Å
    ew2796_measured_err: np.ndarray  # float32
    ew2803_measured: np.ndarray  # float32, rest Å
    ew2803_measured_err: np.ndarray  # float32
    ew_measured: np.ndarray  # bool
    flags: np.ndarray  # uint32: DetectionFlag IN_FOREST and ASSOCIATED (with z_em), else 0

    def __len__(self) -> int:
        return int(self.spectrum.size)

    def select(self, keep: npt.ArrayLike) -> Absorbers:
        keep = np.asarray(keep)
        return Absorbers(**{k: v[keep] for k, v in self.__dict__.items()})

    def columns(self) -> dict[str, np.ndarray]:
        return dict(self.__dict__)

    def per_spectrum(self, n_spectra: int, threshold: float) -> tuple[np.ndarray, np.ndarray]:
        """Per input spectrum: the number of absorbers with probability >= threshold, and the
        row of its most probable absorber (the bluest among equals), -1 where there is none."""
        count = np.bincount(self.spectrum[self.probability >= threshold], minlength=n_spectra)
        best = np.full(n_spectra, -1, np.int64)
        # highest probability last, so that it wins the assignment; among equals the bluest
        order = np.lexsort((-np.arange(len(self)), self.probability))
        best[self.spectrum[order]] = order
        return count, best


SUMMARY_WINDOW = 5.0  # Å: a candidate this close to mgfast_dual's summary λ2796 is its absorber


def lift_by_summary(
    a: Absorbers, probability: npt.ArrayLike, lambda2796: npt.ArrayLike,
    window: float = SUMMARY_WINDOW,
) -> Absorbers:  # fmt: skip
    """mgfast_dual: its summary head's probability that a spectrum holds an absorber at its
    λ2796 is a lower bound on the probability of the candidate found there. The candidate
    nearest the summary's λ2796 (within ``window`` Å) of each spectrum gets max(its probability,
    the summary's); the others are unchanged. (The summary head is the stronger per-spectrum
    detector; its map head finds the others.)"""
    if len(a) == 0:
        return a
    p_s = np.asarray(probability, np.float32)
    lam_s = np.asarray(lambda2796, np.float64)[a.spectrum]
    with np.errstate(invalid="ignore"):
        d = np.abs(a.lambda2796 - lam_s)
    near = np.flatnonzero(d <= window)  # NaN: no summary λ2796, never near
    if near.size == 0:
        return a
    # per spectrum, the nearest of its near candidates
    order = near[np.lexsort((d[near], a.spectrum[near]))]
    first = order[np.r_[True, np.diff(a.spectrum[order]) != 0]]
    p = a.probability.copy()
    p[first] = np.maximum(p[first], p_s[a.spectrum[first]])
    return Absorbers(**{**a.columns(), "probability": p})


@dataclass(frozen=True)
class ErrorModel:
    """Corrections to a catalogue's stated errors, applied last (after the EWs are combined),
    fitted on the simulator's spectra by training/calibrate_errors.py and stored in model.json
    (``calibration.error_model``); their pulls are reported by training/pulls.py.

    σ(λ2796) and σ(z) are multiplied by ``lambda_scale`` × (SNR / 10) ** ``lambda_slope`` (SNR:
    the spectrum's median per pixel, clipped to 2-100; 10 where unknown). A systematic
    ``ew2796_floor`` × EW (``ew2803_floor`` for EW2803) is added in quadrature to σ(EW): what
    the noise does not account for (profile wings beyond the windows, blends, the continuum)."""

    lambda_scale: float = 1.0
    lambda_slope: float = 0.0
    ew2796_floor: float = 0.0
    ew2803_floor: float = 0.0

    @classmethod
    def from_json(cls, d: object) -> ErrorModel:
        keys = ("lambda_scale", "lambda_slope", "ew2796_floor", "ew2803_floor")
        if not isinstance(d, dict) or not all(
            isinstance(d.get(k, 0.0), int | float) and np.isfinite(d.get(k, 0.0)) for k in keys
        ):
            raise ValueError(f"error_model: expected finite numbers {keys}, got {d!r}")
        m = cls(**{k: float(d[k]) for k in keys if k in d})
        if m.lambda_scale <= 0 or m.ew2796_floor < 0 or m.ew2803_floor < 0:
            raise ValueError(f"error_model: scale must be > 0 and floors >= 0, got {d!r}")
        return m

    def lambda_factor(self, snr: npt.ArrayLike) -> np.ndarray:
        s = np.asarray(snr, np.float64)
        s = np.clip(np.where(np.isfinite(s), s, 10.0), 2.0, 100.0)
        return self.lambda_scale * (s / 10.0) ** self.lambda_slope

    def apply(self, a: Absorbers, snr: npt.ArrayLike) -> Absorbers:
        """The absorbers with corrected errors; ``snr``: per input spectrum."""
        if len(a) == 0:
            return a
        f = self.lambda_factor(np.asarray(snr)[a.spectrum])
        cols = a.columns()
        cols["lambda2796_err"] = a.lambda2796_err * f
        cols["z_err"] = a.z_err * f
        for line, floor in (("ew2796", self.ew2796_floor), ("ew2803", self.ew2803_floor)):
            ew = cols[line].astype(np.float64)
            err = cols[line + "_err"].astype(np.float64)
            cols[line + "_err"] = np.sqrt(err * err + (floor * ew) ** 2).astype(np.float32)
        return Absorbers(**cols)


def calibrate(score: np.ndarray, curve: tuple[np.ndarray, np.ndarray] | None) -> np.ndarray:
    """Raw scores to probabilities through a monotone piecewise-linear curve (x, y)."""
    if curve is None:
        return np.asarray(score, np.float32)
    x, y = curve
    p: np.ndarray = np.interp(score, x, y).astype(np.float32)
    return p


def decode_absorbers(
    logits: npt.ArrayLike,
    maps: npt.ArrayLike,
    *,
    window: int = DEFAULT_WINDOW,
    min_score: float = MIN_SCORE,
    calibration: tuple[np.ndarray, np.ndarray] | None = None,
    sigma_scale: dict[str, float] | None = None,
) -> Absorbers:
    """The network's raw outputs, logits (N, cells) and maps (N, cells, 6), to absorbers.

    ``sigma_scale`` multiplies the network's stated uncertainties (keys "lambda2796", "ew2796",
    "ew2803"): factors fitted at export so that 68 % of true values lie within 1 σ."""
    k = {"lambda2796": 1.0, "ew2796": 1.0, "ew2803": 1.0} | dict(sigma_scale or {})
    # float32 over the whole map (what the network gives); float64 only for the candidates
    logits = np.asarray(logits, np.float32)
    maps = np.asarray(maps)
    if logits.ndim != 2 or maps.shape != (*logits.shape, len(CHANNELS)):
        raise ValueError(
            f"expected logits (N, cells) and maps (N, cells, {len(CHANNELS)}), got "
            f"{logits.shape} and {maps.shape}"
        )
    rows, cells, raw = _candidates(logits, window, min_score)
    m = maps[rows, cells].astype(np.float64)
    off = np.clip(m[:, 0], 0.0, CELL - 1e-3)
    pix = np.clip(CELL * cells + off, 0.0, grid.N_PIX - 1.0)
    lam = grid.wavelength_of(pix)
    # σ(λ): Laplace scale b (pixels) -> σ = √2 b, times the pixel width in Å at that λ.
    b_pix = np.exp(np.clip(m[:, 1], -6.0, 4.0))
    lam_err = k["lambda2796"] * np.sqrt(2.0) * b_pix * lam * grid.DLNLAMBDA
    ew1, ew2 = np.exp(np.clip(m[:, 2], -8.0, 3.0)), np.exp(np.clip(m[:, 4], -8.0, 3.0))
    s1 = k["ew2796"] * np.exp(np.clip(m[:, 3], -6.0, 2.0))
    s2 = k["ew2803"] * np.exp(np.clip(m[:, 5], -6.0, 2.0))
    return Absorbers(
        spectrum=rows.astype(np.int64),
        probability=calibrate(raw, calibration),
        score=raw.astype(np.float32),
        lambda2796=lam,
        lambda2796_err=lam_err,
        z=lam / MGII_2796.wavelength - 1.0,
        z_err=lam_err / MGII_2796.wavelength,
        ew2796=ew1.astype(np.float32),
        ew2796_err=(ew1 * s1).astype(np.float32),
        ew2803=ew2.astype(np.float32),
        ew2803_err=(ew2 * s2).astype(np.float32),
        **unmeasured(rows.size),
        flags=np.zeros(rows.size, np.uint32),
    )


def _sigmoid(x: np.ndarray) -> np.ndarray:
    s: np.ndarray = 1.0 / (1.0 + np.exp(-np.clip(x, -60.0, 60.0)))  # float32 in, float32 out
    return s


def _candidates(
    logits: np.ndarray, window: int, min_score: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows, cells, raw scores) of the candidates, in row-major order: steps 1-3 above.

    A candidate holds the largest p of its ±window cells (window >= 1), so its score (three
    cells) is at most 3 p: only cells with p >= min_score / 3 can be one. Those are picked on
    the logits (with a margin for float32 rounding) and decided exactly as on the whole map,
    from their gathered neighbours: the same float32 arithmetic, a fraction of the memory
    traffic."""
    c = logits.shape[1]
    q = min_score / 3.0
    floor = np.log(q / (1.0 - q)) - 0.01 if 0.0 < q < 1.0 and window >= 1 else -np.inf
    rows, cells = np.nonzero(logits >= floor) if np.isfinite(floor) else np.nonzero(
        np.ones(logits.shape, bool))  # fmt: skip
    reach = max(window, 1)
    idx = cells[:, None] + np.arange(-reach, reach + 1)[None, :]
    inside = (idx >= 0) & (idx < c)
    pw = np.where(inside, _sigmoid(logits[rows[:, None], np.clip(idx, 0, c - 1)]), np.float32(0))
    p = pw[:, reach]
    local_max = pw[:, reach - window : reach + window + 1].max(axis=1)
    left, right = pw[:, reach - 1], pw[:, reach + 1]
    score = np.minimum(1.0, left + p + right)
    # A plateau (equal neighbours) keeps only its first cell.
    first = (cells == 0) | (p != left)
    keep = (p >= local_max) & first & (score >= min_score)
    return rows[keep], cells[keep], score[keep]


def unmeasured(n: int) -> dict[str, np.ndarray]:
    """The measured-EW columns of n absorbers whose EWs were not measured on the spectrum."""
    nan = np.full(n, np.nan, np.float32)
    return {
        "ew2796_measured": nan, "ew2796_measured_err": nan.copy(), "ew2803_measured": nan.copy(),
        "ew2803_measured_err": nan.copy(), "ew_measured": np.zeros(n, bool),
    }  # fmt: skip


def match(
    found_spectrum: np.ndarray,
    found_lambda: np.ndarray,
    true_lambda: np.ndarray,
    tolerance: float = 5.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Greedy one-to-one matching of found absorbers to true ones (true_lambda: (N, M), NaN
    padded) within ``tolerance`` Å, closest first. Returns (index of the true absorber's column
    for each found absorber or -1, whether each true absorber was found (N, M))."""
    true_lambda = np.asarray(true_lambda, np.float64)
    n, m = true_lambda.shape
    matched_col = np.full(found_spectrum.size, -1, np.int64)
    found = np.zeros((n, m), bool)
    if found_spectrum.size == 0:
        return matched_col, found
    d = np.abs(true_lambda[found_spectrum] - found_lambda[:, None])  # (F, M)
    d = np.where(np.isfinite(d), d, np.inf)
    pairs = np.argwhere(d <= tolerance)
    order = np.argsort(d[pairs[:, 0], pairs[:, 1]], kind="stable")
    for f, k in pairs[order]:
        s = found_spectrum[f]
        if matched_col[f] < 0 and not found[s, k]:
            matched_col[f] = k
            found[s, k] = True
    return matched_col, found


def sigma_scales(found: Absorbers, col: np.ndarray, truth) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """Factors that make the stated σ cover 68 % of the true values: for each quantity, the
    68th percentile of |error| / σ over the found absorbers matched to a true one (col >= 0,
    from ``match``); truth has abs_lambda2796, abs_ew2796, abs_ew2803 (N, M)."""
    ok = col >= 0
    s, c = found.spectrum[ok], col[ok]
    out = {}
    for key, pred, sig, true in (
        ("lambda2796", found.lambda2796, found.lambda2796_err, truth.abs_lambda2796),
        ("ew2796", np.log(found.ew2796), found.ew2796_err / found.ew2796, np.log(truth.abs_ew2796)),
        ("ew2803", np.log(found.ew2803), found.ew2803_err / found.ew2803, np.log(truth.abs_ew2803)),
    ):
        r = np.abs(pred[ok] - true[s, c]) / sig[ok]
        out[key] = float(np.percentile(r[np.isfinite(r)], 68.27)) if r.size else 1.0
    return out


def fit_calibration(
    score: np.ndarray, is_real: np.ndarray, n_points: int = 64
) -> tuple[np.ndarray, np.ndarray]:
    """An isotonic (pool-adjacent-violators) fit of P(real | score), returned as a monotone
    piecewise-linear curve of at most n_points knots for model.json."""
    order = np.argsort(score, kind="stable")
    x = np.asarray(score, np.float64)[order]
    y = np.asarray(is_real, np.float64)[order]
    # pool adjacent violators on blocks (value, weight, x-mean)
    vals: list[float] = []
    wts: list[float] = []
    xs: list[float] = []
    for xi, yi in zip(x, y, strict=True):
        vals.append(yi)
        wts.append(1.0)
        xs.append(xi)
        while len(vals) > 1 and vals[-2] >= vals[-1]:
            w = wts[-2] + wts[-1]
            v = (vals[-2] * wts[-2] + vals[-1] * wts[-1]) / w
            xm = (xs[-2] * wts[-2] + xs[-1] * wts[-1]) / w
            vals[-2:], wts[-2:], xs[-2:] = [v], [w], [xm]
    bx, by = np.asarray(xs), np.asarray(vals)
    if bx.size > n_points:  # thin the knots, keeping the ends
        keep = np.unique(np.linspace(0, bx.size - 1, n_points).round().astype(int))
        bx, by = bx[keep], by[keep]
    bx = np.concatenate([[0.0], bx, [1.0]])
    by = np.concatenate([[by[0]], by, [by[-1]]])
    by = np.maximum.accumulate(by)
    return bx, by


def expected_calibration_error(
    prob: np.ndarray, is_real: np.ndarray, bins: int = 10
) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    """ECE over equal-width probability bins: Σ_b (n_b / n) |mean(prob) − fraction real|.
    Returns (ECE, bin mean probability, bin fraction real, bin counts) for a reliability
    diagram."""
    prob = np.asarray(prob, np.float64)
    is_real = np.asarray(is_real, bool)
    idx = np.minimum((prob * bins).astype(int), bins - 1)
    count = np.bincount(idx, minlength=bins).astype(float)
    mean_p = np.bincount(idx, prob, minlength=bins) / np.maximum(count, 1)
    frac = np.bincount(idx, is_real.astype(float), minlength=bins) / np.maximum(count, 1)
    ece = float(np.sum(count / max(prob.size, 1) * np.abs(mean_p - frac)))
    return ece, mean_p, frac, count


__all__ = [
    "CHANNELS",
    "Absorbers",
    "ErrorModel",
    "calibrate",
    "decode_absorbers",
    "expected_calibration_error",
    "fit_calibration",
    "match",
    "sigma_scales",
]
