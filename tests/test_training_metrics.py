"""The paper's evaluation metrics (mgfast_train.metrics) on hand-made cases with known answers."""

from __future__ import annotations

import numpy as np

from mgfast_train.metrics import (
    NO_ABSORBER,
    ew_threshold,
    fit_logistic,
    mae_predicted,
    table1,
    threshold_at_fpr,
    youden,
)


def test_mae_counts_false_positives_at_the_negative_label():
    pred = np.array([True, True, False, True])
    lam_pred = np.array([5000.0, 4000.0, 4500.0, 5400.0])
    lam_true = np.array([5001.0, 4002.0, 4500.0, NO_ABSORBER])  # the last is a false positive
    assert mae_predicted(pred, lam_pred, lam_true) == (1.0 + 2.0 + 42.0) / 3


def test_ew_threshold_is_the_lowest_edge_with_high_completeness():
    ew = np.array([0.1, 0.2, 0.3, 0.5, 1.0, 2.0, 3.0, 4.5])
    has = np.ones(ew.size, bool)
    pred = ew >= 0.3  # everything from 0.25 Å up is found
    lam = np.full(ew.size, 5000.0)
    thr, comp, mae = ew_threshold(pred, has, ew, lam + 0.5, lam)
    assert thr == 0.25 and comp == 1.0 and mae == 0.5


def test_youden_and_fixed_fpr_thresholds():
    score = np.array([0.9, 0.8, 0.7, 0.6, 0.4, 0.3, 0.2, 0.1])
    has = np.array([True, True, True, False, True, False, False, False])
    thr, tpr, fpr = youden(score, has)
    assert (thr, tpr, fpr) == (0.7, 0.75, 0.0)
    t = threshold_at_fpr(score, has, 0.25)  # one negative of four may pass
    assert ((score >= t) & ~has).sum() <= 1 and (score >= t)[has].sum() == 4


def test_table1_rows_per_snr_and_overall():
    rng = np.random.default_rng(0)
    n = 400
    has = np.arange(n) % 2 == 0
    snr = np.repeat([3.0, 10.0], n // 2)
    score = np.where(has, 0.9, 0.1)
    lam_true = np.where(has, 5000.0, NO_ABSORBER)
    lam_pred = lam_true + rng.normal(0, 1, n)
    rows = table1(score, lam_pred, has, lam_true, np.full(n, 1.0), snr, 0.5)
    assert [r["snr"] for r in rows] == [3.0, 10.0, "all"]
    assert all(r["accuracy"] == 1.0 and r["fpr"] == 0.0 for r in rows)
    assert abs(rows[-1]["mae"] - np.abs(lam_pred - lam_true)[has].mean()) < 1e-12


def test_logistic_fit_recovers_known_coefficients():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40000, 2))
    z = 1.5 * x[:, 0] - 0.7 * x[:, 1] + 0.3
    y = (rng.random(40000) < 1 / (1 + np.exp(-z))).astype(float)
    coef, b = fit_logistic(x, y, l2=0.0)
    np.testing.assert_allclose(coef, [1.5, -0.7], atol=0.05)
    assert abs(b - 0.3) < 0.05
