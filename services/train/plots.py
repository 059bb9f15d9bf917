"""ROC and calibration plots as PNG bytes (matplotlib, no display needed)."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np

from services.train.evaluate import calibration_bins, roc_auc, roc_curve


def _png(figure: plt.Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight", metadata={"Software": None})
    plt.close(figure)
    return buffer.getvalue()


def roc_png(y: np.ndarray, p: np.ndarray, title: str) -> bytes:
    figure, axes = plt.subplots(figsize=(4.5, 4.5))
    fpr, tpr = roc_curve(y, p)
    auc = roc_auc(y, p)
    axes.plot(fpr, tpr, label=f"AUC {auc:.3f}" if auc is not None else "AUC n/a (one class)")
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=0.8)
    axes.set(xlabel="false positive rate", ylabel="true positive rate", title=title, xlim=(0, 1), ylim=(0, 1.02))
    axes.legend(loc="lower right")
    return _png(figure)


def calibration_png(y: np.ndarray, p: np.ndarray, title: str) -> bytes:
    figure, axes = plt.subplots(figsize=(4.5, 4.5))
    bins = calibration_bins(y, p)
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=0.8, label="perfect calibration")
    if bins:
        predicted, observed, _counts = zip(*bins, strict=True)
        axes.plot(predicted, observed, marker="o", label="model")
        for x, yv, n in bins:
            axes.annotate(str(n), (x, yv), textcoords="offset points", xytext=(4, -10), fontsize=7)
    axes.set(
        xlabel="mean predicted probability", ylabel="observed positive rate", title=title, xlim=(0, 1), ylim=(0, 1)
    )
    axes.legend(loc="upper left")
    return _png(figure)
