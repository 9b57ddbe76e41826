"""The checks that guard promotion, as pure verdicts with the numbers behind them.

They run right after a version is registered; their result is recorded on the version
(tag `checks`), so a version that failed any of them is never promoted, now or later.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..lib.checks import CheckOutcome

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

AUC_FLOOR_CHECK = "auc_above_floor"
NOT_DEGENERATE_CHECK = "predictions_not_degenerate"
LOADS_BACK_CHECK = "loads_from_registry"
# A model that learned nothing scores 0.5 +- 0.03 on a holdout of ~100 churners, and 0.6
# would already be 3 standard deviations of luck; the demo months score 0.84-0.89 and the
# Telco table 0.83. 0.70 fails a broken month (shuffled labels, a mis-joined feature, a
# month-shifted label) and no healthy one.
AUC_FLOOR = 0.70
# The registered model must reproduce the in-memory model's probabilities exactly (same
# code, same arrays); the tolerance only absorbs the JSON round trip of the example's floats.
LOAD_BACK_TOLERANCE = 1e-9


def auc_floor_check(auc: float, floor: float = AUC_FLOOR) -> CheckOutcome:
    passed = auc >= floor
    return CheckOutcome(
        passed,
        "ERROR",
        f"holdout AUC {auc:.4f} is {'at or above' if passed else 'below'} the floor {floor}",
        {"auc": round(auc, 6), "floor": floor},
    )


def not_degenerate_check(churn_probability: np.ndarray, threshold: float) -> CheckOutcome:
    """Both classes predicted on the holdout, from probabilities that actually vary."""
    predicted = churn_probability >= threshold
    positives = int(predicted.sum())
    negatives = len(predicted) - positives
    spread = float(np.std(churn_probability))
    passed = positives > 0 and negatives > 0 and spread > 0
    verdict = "both classes predicted" if passed else "degenerate: one class (or a constant)"
    return CheckOutcome(
        passed,
        "ERROR",
        f"{verdict}: {positives:,} churn and {negatives:,} stay at threshold {threshold:.4f}",
        {
            "predicted_churn": positives,
            "predicted_stay": negatives,
            "probability_std": round(spread, 6),
            "threshold": round(threshold, 6),
        },
    )


def loads_back_check(client: MlflowClient, version: str, in_memory_model) -> CheckOutcome:
    """Download the version from the registry, load it, score its own input example."""
    # Imported here: the Dagster definitions import this module's names and thresholds.
    from mlflow.models import Model

    from .registry import download_model, version_uri
    from .serialization import load_model_dir
    from .threads import openmp_limited

    uri = version_uri(version)
    started = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="streamflow-check-") as tmp:
            model_dir = download_model(client, version, Path(tmp))
            loaded = load_model_dir(model_dir)
            example = Model.load(model_dir).load_input_example(model_dir)
            with openmp_limited():
                from_registry = loaded.predict_proba(example)[:, 1]
                expected = in_memory_model.predict_proba(example)[:, 1]
                predictions = loaded.predict(example)
    except Exception as err:  # reported as the failed check, with its reason
        return CheckOutcome(
            False, "ERROR", f"{uri} could not be loaded and scored: {err}", {"model_uri": uri}
        )
    difference = float(np.max(np.abs(from_registry - expected)))
    passed = difference <= LOAD_BACK_TOLERANCE
    return CheckOutcome(
        passed,
        "ERROR",
        f"{uri} loaded and scored its {len(example)}-row input example; largest difference "
        f"from the trained model {difference:.2e}",
        {
            "model_uri": uri,
            "example_rows": len(example),
            "max_abs_difference": difference,
            "example_predictions": [bool(p) for p in predictions],
            "load_and_score_seconds": round(time.perf_counter() - started, 3),
        },
    )
