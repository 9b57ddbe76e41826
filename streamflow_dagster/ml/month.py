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
from ..platform.settings import DEFAULT_UI_URL
from .card_stats import metric_intervals, segment_metrics
from .checks import (
    AUC_FLOOR,
    AUC_FLOOR_CHECK,
    LOADS_BACK_CHECK,
    NOT_DEGENERATE_CHECK,
    auc_floor_check,
    loads_back_check,
    not_degenerate_check,
)
from .dataset import LABEL, SEED, feature_columns
from .evaluation import Evaluation, evaluate
from .model_card import CardFacts, card_markdown, log_training_dataset, write_card
from .registry import REGISTERED_MODEL, record_checks
from .report_links import DAGSTER_RUN_URL_TAG, dagster_asset_url, dagster_run_url
from .tracking import LoggedMonth, log_month, new_workdir
from .training import TrainedModel, train


@dataclass(frozen=True)
class MonthModel:
    trained: TrainedModel
    evaluation: Evaluation
    logged: LoggedMonth
    checks: dict[str, CheckOutcome]  # by check name
    roc_png: bytes  # the ROC plot, for the asset's metadata
    card: str  # the model card (markdown), as written to the version and its run

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
    segments: pd.DataFrame | None = None,
    dagster_ui_url: str = DEFAULT_UI_URL,
) -> MonthModel:
    """Train on the month's stored training set and register the result as a new version.

    `segments`: attributes per user_id (card_stats.SEGMENT_COLUMNS) for the card's
    per-segment metrics; `dagster_ui_url` makes the links to the Dagster run and training set.
    """
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
    failed = [name for name, outcome in checks.items() if not outcome.passed]
    record_checks(client, logged.version, failed)
    run_url = dagster_run_url(dagster_ui_url, dagster_run_id)
    client.set_tag(logged.run_id, DAGSTER_RUN_URL_TAG, run_url)
    client.set_model_version_tag(REGISTERED_MODEL, logged.version, DAGSTER_RUN_URL_TAG, run_url)
    source = dagster_asset_url(dagster_ui_url, "training_set", as_of)
    dataset = log_training_dataset(client, logged.run_id, training_set, as_of, source)
    attributes = None
    if segments is not None:  # the holdout's users, in the holdout's order
        attributes = segments.reindex(pd.Index(split.holdout_users, name="user_id"))
    facts = CardFacts(
        as_of=as_of,
        feature_service=feature_service,
        features=trained.features,
        algorithm=trained.algorithm,
        threshold=trained.threshold,
        split_rows=split.rows,
        churn_rate=float(training_set[LABEL].astype(bool).mean()),
        metrics=metric_intervals(
            split.y_holdout, evaluation.churn_probability, trained.threshold, seed
        ),
        segments=None
        if attributes is None
        else segment_metrics(split.y_holdout, evaluation.churn_probability, attributes),
        checks={name: outcome.passed for name, outcome in checks.items()},
        dataset=dataset,
        links={"Dagster run": run_url, f"training_set {as_of} in Dagster": source},
    )
    card = card_markdown(facts)
    write_card(client, logged.version, logged.run_id, card)
    return MonthModel(trained, evaluation, logged, checks, roc_png, card)
