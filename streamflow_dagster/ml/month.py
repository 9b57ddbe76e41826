"""One month end to end: train, evaluate, log and register, check, record the checks.

The churn_model asset, the integration tests and the benchmark all call `train_month`, so
the path they measure is the one that runs. The caller owns the active MLflow run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from mlflow.tracking import MlflowClient

from ..lib.checks import CheckOutcome
from .checks import (
    AUC_FLOOR,
    AUC_FLOOR_CHECK,
    LOADS_BACK_CHECK,
    NOT_DEGENERATE_CHECK,
    auc_floor_check,
    loads_back_check,
    not_degenerate_check,
)
from .dataset import SEED, feature_columns
from .evaluation import Evaluation, evaluate
from .registry import record_checks
from .tracking import LoggedMonth, log_month, new_workdir
from .training import TrainedModel, train


@dataclass(frozen=True)
class MonthModel:
    trained: TrainedModel
    evaluation: Evaluation
    logged: LoggedMonth
    checks: dict[str, CheckOutcome]  # by check name
    roc_png: bytes  # the ROC plot, for the asset's metadata

    @property
    def failed_checks(self) -> list[str]:
        return [name for name, outcome in self.checks.items() if not outcome.passed]


def train_month(
    client: MlflowClient,
    training_set: pd.DataFrame,
    *,
    as_of: str,
    feature_service: str,
    dagster_run_id: str,
    seed: int = SEED,
    auc_floor: float = AUC_FLOOR,
) -> MonthModel:
    """Train on the month's stored training set and register the result as a new version."""
    trained = train(training_set, feature_columns(training_set), seed)
    split = trained.split
    evaluation = evaluate(trained.model, split.X_holdout, split.y_holdout, trained.threshold, seed)
    with new_workdir() as workdir:
        logged = log_month(
            client,
            trained,
            evaluation,
            as_of=as_of,
            feature_service=feature_service,
            dagster_run_id=dagster_run_id,
            workdir=Path(workdir),
        )
        roc_png = logged.plots["roc"].read_bytes()
    checks = {
        AUC_FLOOR_CHECK: auc_floor_check(evaluation.metrics["auc"], auc_floor),
        NOT_DEGENERATE_CHECK: not_degenerate_check(evaluation.churn_probability, trained.threshold),
        LOADS_BACK_CHECK: loads_back_check(client, logged.version, trained.model),
    }
    month = MonthModel(trained, evaluation, logged, checks, roc_png)
    record_checks(client, logged.version, month.failed_checks)
    return month
