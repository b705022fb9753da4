"""The paper's evaluation metrics (Szakacs et al. 2023, Sect. 4 and Table 1), in NumPy.

Definitions (as the paper's): accuracy at a probability threshold; localisation MAE over spectra
*predicted* to hold an absorber, false positives included (their true λ2796 is the 5358 Å label);
completeness per rest-EW bin; the EW threshold of a SNR is the lowest bin edge above which the
completeness of all absorbers is at least `target` (99.4 %), reported with the completeness and
MAE of the absorbers above it; Youden's J = TPR − FPR maximised over thresholds. Beyond the
paper: completeness at a fixed false-positive rate (one threshold for the whole set, set on its
negatives), so that detectors with different score scales compare fairly.
"""

from __future__ import annotations

import numpy as np

EW_BINS = (0.05, 0.15, 0.25, 0.35, 0.75, 1.05, 1.25, 1.55, 2.0, 3.0, 4.0, 5.15)
NO_ABSORBER = 5358.0


def accuracy(pred: np.ndarray, has: np.ndarray) -> float:
    return float((pred == has).mean())


def mae_predicted(pred: np.ndarray, lam_pred: np.ndarray, lam_true: np.ndarray) -> float:
    return float(np.abs(lam_pred[pred] - lam_true[pred]).mean()) if pred.any() else float("nan")


def ew_threshold(
    pred: np.ndarray,
    has: np.ndarray,
    ew: np.ndarray,
    lam_pred: np.ndarray,
    lam_true: np.ndarray,
    target: float = 0.994,
) -> tuple[float, float, float]:
    """(threshold, completeness above it, MAE of detected absorbers above it); NaNs if none."""
    for edge in EW_BINS[:-1]:
        above = has & (ew >= edge)
        if above.sum() == 0:
            continue
        comp = pred[above].mean()
        if comp >= target:
            det = above & pred
            mae = float(np.abs(lam_pred[det] - lam_true[det]).mean())
            return edge, float(comp), mae
    return float("nan"), float("nan"), float("nan")


def youden(score: np.ndarray, has: np.ndarray) -> tuple[float, float, float]:
    """(threshold maximising TPR − FPR, its TPR, its FPR)."""
    order = np.argsort(-score, kind="stable")
    s, h = score[order], has[order]
    tp, fp = np.cumsum(h), np.cumsum(~h)
    tpr, fpr = tp / max(h.sum(), 1), fp / max((~h).sum(), 1)
    last = np.r_[s[1:] != s[:-1], True]  # a threshold between distinct scores
    j = np.where(last, tpr - fpr, -np.inf)
    i = int(np.argmax(j))
    return float(s[i]), float(tpr[i]), float(fpr[i])


def threshold_at_fpr(score: np.ndarray, has: np.ndarray, fpr: float) -> float:
    """The score threshold whose false-positive rate on the negatives is at most fpr."""
    neg = np.sort(score[~has])[::-1]
    k = int(np.floor(fpr * neg.size))
    return float(np.nextafter(neg[k], np.inf)) if k < neg.size else float(neg[-1])


def table1(
    score: np.ndarray,
    lam_pred: np.ndarray,
    has: np.ndarray,
    lam_true: np.ndarray,
    ew: np.ndarray,
    snr: np.ndarray,
    threshold: float,
) -> list[dict]:
    """Rows of Table 1: one per SNR value, then 'all'."""
    rows = []
    pred = score >= threshold
    for s in [*sorted(np.unique(snr)), None]:
        m = np.ones(snr.size, bool) if s is None else snr == s
        thr, comp, mae_above = ew_threshold(pred[m], has[m], ew[m], lam_pred[m], lam_true[m])
        rows.append(
            {
                "snr": "all" if s is None else float(s),
                "n": int(m.sum()),
                "accuracy": accuracy(pred[m], has[m]),
                "mae": mae_predicted(pred[m], lam_pred[m], lam_true[m]),
                "ew_threshold": thr,
                "completeness_above": comp,
                "mae_above": mae_above,
                "fpr": float(pred[m & ~has].mean()) if (m & ~has).any() else float("nan"),
            }
        )
    return rows


def completeness_grid(
    pred: np.ndarray, has: np.ndarray, ew: np.ndarray, snr: np.ndarray
) -> np.ndarray:
    """Completeness per (SNR, EW bin): the paper's Fig. 7 TPR."""
    snrs = sorted(np.unique(snr))
    out = np.full((len(snrs), len(EW_BINS) - 1), np.nan)
    for i, s in enumerate(snrs):
        for j in range(len(EW_BINS) - 1):
            m = has & (snr == s) & (ew >= EW_BINS[j]) & (ew < EW_BINS[j + 1])
            if m.any():
                out[i, j] = pred[m].mean()
    return out


def fit_logistic(
    x: np.ndarray, y: np.ndarray, weight: np.ndarray | None = None, l2: float = 1e-4
) -> tuple[np.ndarray, float]:
    """Weighted logistic regression by Newton's method (a small ridge on the coefficients keeps
    it finite on separable data): coefficients (d,) and the intercept."""
    n, d = x.shape
    xa = np.hstack([x, np.ones((n, 1))])
    w = np.ones(n) if weight is None else np.asarray(weight, np.float64)
    w = w / w.sum()
    beta = np.zeros(d + 1)
    ridge = l2 * np.eye(d + 1)
    ridge[d, d] = 0.0
    for _ in range(100):
        p = 1.0 / (1.0 + np.exp(-np.clip(xa @ beta, -40, 40)))
        grad = xa.T @ (w * (p - y)) + ridge @ beta
        hess = (xa * (w * p * (1 - p))[:, None]).T @ xa + ridge
        step = np.linalg.solve(hess, grad)
        beta -= step
        if np.max(np.abs(step)) < 1e-10:
            break
    return beta[:d], float(beta[d])
