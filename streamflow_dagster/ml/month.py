"""One month end to end: train, evaluate, log and register, check, record the checks.

The churn_model asset calls `train_compared_month` (one model per compared feature service,
the month's choice registered); the tests and the benchmark call `train_month` (one service),
the same path. The caller owns the active MLflow run.
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
from .evaluation import Evaluation, evaluate, feature_importances, holdout_metrics
from .model_card import CardFacts, card_markdown, log_training_dataset, write_card
from .promotion import MIN_AUC_GAIN
from .registry import REGISTERED_MODEL, record_checks
from .report_links import DAGSTER_RUN_URL_TAG, dagster_asset_url, dagster_run_url
from .services import ServiceChoice, ServiceResult, choose_service
from .threads import openmp_limited
from .tracking import LoggedMonth, log_month, new_workdir
from .training import TrainedModel, train

# Version tags of the month's comparison of feature services.
SERVICES_COMPARED_TAG = "feature_services.compared"  # "churn_v1 0.8355, churn_v2 0.8467"
SERVICE_REASON_TAG = "feature_services.reason"


@dataclass(frozen=True)
class CardContext:
    """What the model card needs beyond the trained model: the month's rows and seed, the
    holdout users' segment attributes (or None) and the Dagster UI's address for links."""

    training_set: pd.DataFrame
    seed: int
    segments: pd.DataFrame | None
    dagster_ui_url: str


@dataclass(frozen=True)
class MonthModel:
    trained: TrainedModel
    evaluation: Evaluation
    logged: LoggedMonth
    checks: dict[str, CheckOutcome]  # by check name
    roc_png: bytes  # the ROC plot, for the asset's metadata
    card: str  # the model card (markdown), as written to the version and its run
    services: ServiceChoice | None = None  # the compared feature services (None: one trained)

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
    features: list[str] | None = None,
    segments: pd.DataFrame | None = None,
    dagster_ui_url: str = DEFAULT_UI_URL,
) -> MonthModel:
    """Train one service's model on the month's rows and register it as a new version.

    `features`: the service's features (None: every feature column of `training_set`);
    `segments`: attributes per user_id (card_stats.SEGMENT_COLUMNS) for the card's
    per-segment metrics; `dagster_ui_url` makes the links to the Dagster run and training set.
    """
    trained = train(training_set, features or feature_columns(training_set), seed)
    split = trained.split
    evaluation = evaluate(trained.model, split.X_holdout, split.y_holdout, trained.threshold, seed)
    card = CardContext(training_set, seed, segments, dagster_ui_url)
    return _register(
        client, trained, evaluation, as_of, feature_service, dagster_run_id, auc_floor, None, card
    )


def train_compared_month(
    client: MlflowClient,
    training_set: pd.DataFrame,
    services: dict[str, list[str]],
    *,
    as_of: str,
    dagster_run_id: str,
    seed: int = SEED,
    auc_floor: float = AUC_FLOOR,
    min_auc_gain: float = MIN_AUC_GAIN,
    segments: pd.DataFrame | None = None,
    dagster_ui_url: str = DEFAULT_UI_URL,
) -> MonthModel:
    """One model per feature service ({service: features}, incumbent first) on the same rows
    and holdout; the chosen one (ml/services.py) is registered, the comparison logged with it.
    """
    trained_by, scored_by, results = {}, {}, []
    for service, features in services.items():
        trained = train(training_set, features, seed)
        split = trained.split
        with openmp_limited():
            probability = trained.model.predict_proba(split.X_holdout)[:, 1]
        metrics = holdout_metrics(split.y_holdout, probability, trained.threshold)
        failed = [
            name
            for name, outcome in _holdout_checks(
                trained, metrics["auc"], probability, auc_floor
            ).items()
            if not outcome.passed
        ]
        trained_by[service], scored_by[service] = trained, (metrics, probability)
        results.append(
            ServiceResult(
                service, metrics["auc"], trained.validation_auc[trained.algorithm], tuple(failed)
            )
        )
    _check_same_holdout(trained_by)
    choice = choose_service(results, min_auc_gain)
    chosen = trained_by[choice.service]
    metrics, probability = scored_by[choice.service]
    # Permutation importances (the costly part of `evaluate`) only for the registered model.
    split = chosen.split
    importances = feature_importances(chosen.model, split.X_holdout, split.y_holdout, seed)
    return _register(
        client,
        chosen,
        Evaluation(metrics, probability, importances),
        as_of,
        choice.service,
        dagster_run_id,
        auc_floor,
        choice,
        CardContext(training_set, seed, segments, dagster_ui_url),
        all_holdout_features=[t.split.X_holdout for t in trained_by.values()],
    )


def _check_same_holdout(trained_by: dict[str, TrainedModel]) -> None:
    """Same rows and seed give the same split whatever the features: asserted, not assumed."""
    users = [t.split.holdout_users for t in trained_by.values()]
    if any(len(u) != len(users[0]) or (u != users[0]).any() for u in users[1:]):
        raise RuntimeError(
            f"the feature services {list(trained_by)} were split into different holdouts: "
            "their models cannot be compared (the split must depend only on rows and seed)"
        )


def _holdout_checks(
    trained: TrainedModel, auc: float, churn_probability, auc_floor: float
) -> dict[str, CheckOutcome]:
    return {
        AUC_FLOOR_CHECK: auc_floor_check(auc, auc_floor),
        NOT_DEGENERATE_CHECK: not_degenerate_check(churn_probability, trained.threshold),
    }


def _register(
    client: MlflowClient,
    trained: TrainedModel,
    evaluation: Evaluation,
    as_of: str,
    feature_service: str,
    dagster_run_id: str,
    auc_floor: float,
    services: ServiceChoice | None,
    context: CardContext,
    all_holdout_features: list[pd.DataFrame] | None = None,
) -> MonthModel:
    comparison_metrics, comparison_tags = {}, {}
    if services is not None:
        for result in services.results:
            comparison_metrics[f"holdout_auc.{result.service}"] = result.holdout_auc
            comparison_metrics[f"validation_auc.{result.service}"] = result.validation_auc
        comparison_tags = {
            SERVICES_COMPARED_TAG: services.comparison(),
            SERVICE_REASON_TAG: services.reason[:4900],
        }
    with new_workdir() as workdir:
        logged = log_month(
            client,
            trained,
            evaluation,
            as_of=as_of,
            feature_service=feature_service,
            dagster_run_id=dagster_run_id,
            workdir=Path(workdir),
            extra_metrics=comparison_metrics,
            extra_tags=comparison_tags,
            holdout_features=all_holdout_features,
        )
        roc_png = logged.plots["roc"].read_bytes()
    checks = {
        **_holdout_checks(
            trained, evaluation.metrics["auc"], evaluation.churn_probability, auc_floor
        ),
        LOADS_BACK_CHECK: loads_back_check(client, logged.version, trained.model),
    }
    failed = [name for name, outcome in checks.items() if not outcome.passed]
    record_checks(client, logged.version, failed)
    card = _write_card(
        client, trained, evaluation, logged, checks, as_of, feature_service, dagster_run_id, context
    )
    return MonthModel(trained, evaluation, logged, checks, roc_png, card, services)


def _write_card(
    client, trained, evaluation, logged, checks, as_of, feature_service, dagster_run_id, context
) -> str:
    """The version's model card (description and artifact), its dataset input and links."""
    split, training_set, segments = trained.split, context.training_set, context.segments
    run_url = dagster_run_url(context.dagster_ui_url, dagster_run_id)
    client.set_tag(logged.run_id, DAGSTER_RUN_URL_TAG, run_url)
    client.set_model_version_tag(REGISTERED_MODEL, logged.version, DAGSTER_RUN_URL_TAG, run_url)
    source = dagster_asset_url(context.dagster_ui_url, "training_set", as_of)
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
            split.y_holdout, evaluation.churn_probability, trained.threshold, context.seed
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
    return card
