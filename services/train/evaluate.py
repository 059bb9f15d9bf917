"""Held-out evaluation: discrimination, calibration and the confusion matrix (pure: numpy)."""

from __future__ import annotations

import numpy as np

CALIBRATION_BINS = 10


def roc_auc(y: np.ndarray, p: np.ndarray) -> float | None:
    """Area under the ROC curve (Mann-Whitney, ties counted half); ``None`` when only one class is present."""
    positives, negatives = int((y == 1).sum()), int((y == 0).sum())
    if positives == 0 or negatives == 0:
        return None
    order = np.argsort(p, kind="mergesort")
    ranks = np.empty(len(p), dtype=np.float64)
    sorted_p = p[order]
    i = 0
    while i < len(p):  # average ranks over ties
        j = i
        while j + 1 < len(p) and sorted_p[j + 1] == sorted_p[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    rank_sum = ranks[y == 1].sum()
    return float((rank_sum - positives * (positives + 1) / 2.0) / (positives * negatives))


def roc_curve(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(false positive rate, true positive rate) at every distinct threshold, from (0, 0) to (1, 1)."""
    order = np.argsort(-p, kind="mergesort")
    y_sorted, p_sorted = y[order], p[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(p_sorted)), len(p_sorted) - 1]
    tp = np.cumsum(y_sorted)[last_of_tie]
    fp = (last_of_tie + 1) - tp
    tpr = np.r_[0.0, tp / max(tp[-1], 1)] if len(tp) else np.array([0.0, 1.0])
    fpr = np.r_[0.0, fp / max(fp[-1], 1)] if len(fp) else np.array([0.0, 1.0])
    return fpr, tpr


def calibration_bins(y: np.ndarray, p: np.ndarray, bins: int = CALIBRATION_BINS) -> list[tuple[float, float, int]]:
    """(mean predicted, observed rate, count) per equal-width probability bin that holds any prediction."""
    index = np.minimum((p * bins).astype(int), bins - 1)
    return [
        (float(p[index == b].mean()), float(y[index == b].mean()), int((index == b).sum()))
        for b in range(bins)
        if (index == b).any()
    ]


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = CALIBRATION_BINS) -> float:
    return float(
        sum(count * abs(predicted - observed) for predicted, observed, count in calibration_bins(y, p, bins))
        / max(len(p), 1)
    )


def evaluate(y: np.ndarray, p: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """AUC (absent when one class only), F1, accuracy, Brier, ECE and the confusion matrix at ``threshold``."""
    predicted = p >= threshold
    actual = y == 1
    tp, fp = int((predicted & actual).sum()), int((predicted & ~actual).sum())
    fn, tn = int((~predicted & actual).sum()), int((~predicted & ~actual).sum())
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0
    metrics = {
        "f1": float(f1),
        "accuracy": (tp + tn) / max(len(y), 1),
        "brier": float(np.mean((p - y) ** 2)) if len(y) else 0.0,
        "ece": expected_calibration_error(y, p),
        "tp": float(tp),
        "fp": float(fp),
        "tn": float(tn),
        "fn": float(fn),
        "n": float(len(y)),
    }
    auc = roc_auc(y, p)
    if auc is not None:
        metrics["auc"] = auc
    return metrics
