"""The evaluation plots as PNG files: ROC, precision-recall, confusion matrix, importances."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

# Figures are made with matplotlib's object API (Figure + Agg canvas), never pyplot: no global
# state, no display backend, safe in Dagster's worker processes and threads.
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sklearn.metrics import (
    average_precision_score,
    confusion_matrix,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)

# Small figures: the ROC plot is also embedded in the Dagster UI's metadata (base64).
FIGSIZE = (4.2, 3.6)
DPI = 90
# The ROC, precision-recall and confusion figures' margins: what tight_layout gives them
# (fixed size, short tick labels), set instead of computed for every month (the layout pass
# costs about as much as drawing). The importances' names vary: that one is laid out.
FIXED_MARGINS = {"left": 0.165, "right": 0.965, "bottom": 0.165, "top": 0.9}
PLOT_FILES = {
    "roc": "roc.png",
    "precision_recall": "precision_recall.png",
    "confusion": "confusion_matrix.png",
    "importances": "feature_importances.png",
}


def write_plots(
    out_dir: Path,
    y_true: np.ndarray,
    churn_probability: np.ndarray,
    threshold: float,
    importances: pd.Series,
    title: str,
) -> dict[str, Path]:
    """Write the four plots into `out_dir`; returns their paths by kind."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {kind: out_dir / name for kind, name in PLOT_FILES.items()}
    _roc(paths["roc"], y_true, churn_probability, title)
    _precision_recall(paths["precision_recall"], y_true, churn_probability, threshold, title)
    _confusion(paths["confusion"], y_true, churn_probability >= threshold, threshold, title)
    _importances(paths["importances"], importances, title)
    return paths


def _figure(figsize=FIGSIZE):
    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def _save(fig: Figure, path: Path, fixed: bool = True) -> None:
    if fixed:
        fig.subplots_adjust(**FIXED_MARGINS)
    else:
        fig.tight_layout()
    fig.savefig(path, dpi=DPI)


def _roc(path: Path, y_true, probability, title: str) -> None:
    fpr, tpr, _ = roc_curve(y_true, probability)
    fig, ax = _figure()
    ax.plot(fpr, tpr, label=f"AUC {roc_auc_score(y_true, probability):.3f}")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=0.8, label="chance")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title=f"ROC, {title}")
    ax.legend(loc="lower right")
    _save(fig, path)


def _precision_recall(path: Path, y_true, probability, threshold: float, title: str) -> None:
    precision, recall, thresholds = precision_recall_curve(y_true, probability)
    fig, ax = _figure()
    ax.plot(recall, precision, label=f"AP {average_precision_score(y_true, probability):.3f}")
    chosen = int(np.searchsorted(thresholds, threshold))
    if chosen < len(thresholds):
        ax.scatter(
            [recall[chosen]], [precision[chosen]], color="red", label=f"threshold {threshold:.3f}"
        )
    ax.axhline(np.mean(y_true), linestyle="--", color="grey", linewidth=0.8, label="churn rate")
    ax.set(xlabel="recall", ylabel="precision", title=f"Precision-recall, {title}")
    ax.legend(loc="upper right")
    _save(fig, path)


def _confusion(path: Path, y_true, predicted, threshold: float, title: str) -> None:
    matrix = confusion_matrix(y_true, predicted, labels=[False, True])
    fig, ax = _figure()
    ax.imshow(matrix, cmap="Blues")
    for (row, column), count in np.ndenumerate(matrix):
        color = "white" if count > matrix.max() / 2 else "black"
        ax.text(column, row, f"{count:,}", ha="center", va="center", color=color)
    ax.set_xticks([0, 1], ["stays", "churns"])
    ax.set_yticks([0, 1], ["stays", "churns"])
    ax.set(xlabel="predicted", ylabel="actual", title=f"Threshold {threshold:.3f}, {title}")
    _save(fig, path)


def _importances(path: Path, importances: pd.Series, title: str) -> None:
    ordered = importances.sort_values()
    fig, ax = _figure((FIGSIZE[0] + 1.2, FIGSIZE[1] + 0.6))
    ax.barh(list(ordered.index), ordered.to_numpy())
    ax.set(xlabel="holdout AUC drop when shuffled", title=f"Permutation importance, {title}")
    ax.tick_params(axis="y", labelsize=8)
    _save(fig, path, fixed=False)
