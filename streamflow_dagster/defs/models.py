"""The model lifecycle as assets: churn_model per month, production_model, churn_scores per month.

scikit-learn and MLflow are imported inside the assets and resources that use them: every
Dagster process loads these definitions, and those imports cost seconds.
"""

import base64
from typing import Any

import dagster as dg

from ..features.training_table import (
    labels_not_landed_message,
    load_training_set,
    training_set_status,
)
from ..ml import code_version
from ..ml.checks import AUC_FLOOR, AUC_FLOOR_CHECK, LOADS_BACK_CHECK, NOT_DEGENERATE_CHECK
from ..ml.dataset import SEED
from ..ml.promotion import MIN_AUC_GAIN
from .checks import to_check_result
from .features import FEATURE_MARTS, feast_registry
from .mlflow_runs import end_orphaned_runs
from .month_runs import run_months
from .partitions import AS_OF_PARTITIONS, partition_months, validate_as_of
from .ranges import materialize_months
from .resources import FeastResource, MlflowStoreResource, WarehouseResource

MODELS_GROUP = "models"
MODEL_CHECK_SPECS = [
    dg.AssetCheckSpec(
        AUC_FLOOR_CHECK,
        asset="churn_model",
        blocking=True,
        description=f"Holdout AUC at or above the floor ({AUC_FLOOR} by default).",
    ),
    dg.AssetCheckSpec(
        NOT_DEGENERATE_CHECK,
        asset="churn_model",
        blocking=True,
        description="The holdout gets both predictions (churn and stay) at the chosen threshold.",
    ),
    dg.AssetCheckSpec(
        LOADS_BACK_CHECK,
        asset="churn_model",
        blocking=True,
        description="The registered version loads from the registry and scores its input example.",
    ),
]


class ChurnModelConfig(dg.Config):
    seed: int = SEED
    auc_floor: float = AUC_FLOOR


@dg.asset(
    partitions_def=AS_OF_PARTITIONS,
    deps=["training_set"],
    group_name=MODELS_GROUP,
    kinds={"mlflow", "scikitlearn"},
    code_version=code_version(),
    check_specs=MODEL_CHECK_SPECS,
    backfill_policy=dg.BackfillPolicy.single_run(),
)
def churn_model(
    context: dg.AssetExecutionContext,
    config: ChurnModelConfig,
    warehouse: WarehouseResource,
    mlflow_store: MlflowStoreResource,
    mlflow: dg.ResourceParam[Any],
):
    """The month's churn model: trained, evaluated, logged to MLflow, registered, checked."""
    # `mlflow` is dagster-mlflow's resource: it started (or resumed) this Dagster run's MLflow
    # run and proxies the mlflow module's functions. That run is the first month's; each
    # later month of a range gets its own MLflow run with the same Dagster tags.
    months = partition_months(context)
    end_orphaned_runs(context, mlflow_store.client(step="churn_model", month=months[0]))

    def one_month(as_of: str) -> dg.MaterializeResult:
        if as_of != months[0]:  # the tags the resource gives its run (defs/resources.py)
            from ..ml.run_hygiene import process_tags

            tags = {"dagster_run_id": context.run.run_id, **_extra_tags(mlflow), **process_tags()}
            mlflow.start_run(tags=tags)
        return _train_month(context, config, warehouse, mlflow_store, mlflow, as_of)

    yield from materialize_months(context, one_month)


def _extra_tags(mlflow) -> dict[str, str]:
    return dict(getattr(mlflow, "extra_tags", None) or {})


def _train_month(context, config, warehouse, mlflow_store, mlflow, as_of_key: str):
    as_of = validate_as_of(as_of_key)
    context.log.info(f"MLflow run {mlflow.active_run().info.run_id} for {as_of}")
    client = mlflow_store.client(step="churn_model", month=str(as_of))
    status = "FAILED"
    try:  # every exit ends this month's MLflow run: none is left RUNNING
        mlflow.set_tags({"mlflow.runName": f"churn_model {as_of}", "as_of": str(as_of)})
        with warehouse.connect() as conn:
            built = training_set_status(conn, as_of)
            if built is None:
                raise RuntimeError(
                    f"features.training_set has no month {as_of}: materialize training_set "
                    f"for {as_of} first"
                )
            rows = load_training_set(conn, as_of) if built.labels_landed else None
        if rows is None:
            status = "FINISHED"
            return _no_model(context, mlflow, as_of, labels_not_landed_message(as_of))
        from ..ml.dataset import NotEnoughLabels
        from ..ml.month import train_month

        try:
            month = train_month(
                client,
                rows,
                as_of=str(as_of),
                feature_service=built.feature_service,
                dagster_run_id=context.run.run_id,
                seed=config.seed,
                auc_floor=config.auc_floor,
            )
        except NotEnoughLabels as err:
            status = "FINISHED"
            return _no_model(context, mlflow, as_of, f"{as_of}: {err}")
        status = "FINISHED"
        return _model_result(as_of, month)
    finally:
        mlflow.end_run(status=status)


def _no_model(context, mlflow, as_of, reason: str) -> dg.MaterializeResult:
    """A month that yields no model: recorded on the MLflow run, in the UI, and in the checks."""
    context.log.warning(f"No model for {as_of}: {reason}")
    mlflow.set_tags({"outcome": "no model", "reason": reason[:4900]})
    return dg.MaterializeResult(
        metadata={"as_of": str(as_of), "model_version": "none", "reason": reason},
        check_results=[
            dg.AssetCheckResult(
                check_name=spec.name,
                passed=False,
                severity=dg.AssetCheckSeverity.WARN,  # nothing to block: no model this month
                description=f"No model to check: {reason}",
            )
            for spec in MODEL_CHECK_SPECS
        ],
    )


def _model_result(as_of, month) -> dg.MaterializeResult:
    metrics, logged, trained = month.evaluation.metrics, month.logged, month.trained
    roc = base64.b64encode(month.roc_png).decode()
    return dg.MaterializeResult(
        metadata={
            "as_of": str(as_of),
            "model_version": logged.version,
            "model_uri": logged.model_uri,
            "mlflow_run_id": logged.run_id,
            "algorithm": trained.algorithm,
            "threshold": round(trained.threshold, 4),
            **{name: round(metrics[name], 4) for name in ("auc", "f1", "precision", "recall")},
            "accuracy": round(metrics["accuracy"], 4),
            "log_loss": round(metrics["log_loss"], 4),
            "rows": int(logged.metrics["rows"]),
            "train_seconds": round(trained.train_seconds, 2),
            "validation_auc": dg.MetadataValue.json(
                {name: round(auc, 4) for name, auc in trained.validation_auc.items()}
            ),
            "roc": dg.MetadataValue.md(f"![ROC curve](data:image/png;base64,{roc})"),
            "failed_checks": ", ".join(month.failed_checks) or "none",
        },
        check_results=[to_check_result(name, outcome) for name, outcome in month.checks.items()],
    )


class ProductionModelConfig(dg.Config):
    min_auc_gain: float = MIN_AUC_GAIN


@dg.asset(
    deps=[churn_model],
    group_name=MODELS_GROUP,
    kinds={"mlflow"},
    code_version=code_version(),
)
def production_model(
    context: dg.AssetExecutionContext,
    config: ProductionModelConfig,
    warehouse: WarehouseResource,
    mlflow_store: MlflowStoreResource,
) -> dg.MaterializeResult:
    """Alias `production`: the newest month's model if checked and better than the champion."""
    from ..ml.champion import decide_and_move, promotion_lock

    client = mlflow_store.client(step="production_model")
    end_orphaned_runs(context, client)  # their versions are marked: never promoted
    months = run_months(context.run.tags)
    if len(months) <= 1:
        with promotion_lock(warehouse.url()):
            moved = decide_and_move(
                client, run=context.run.run_id, min_auc_gain=config.min_auc_gain
            )
        decision = moved.decision
        context.log.info(f"{decision.action}: {decision.reason}")
        return dg.MaterializeResult(metadata=_decision_metadata(moved))
    # A run over a range decides month by month, oldest first, each time among the months up
    # to that one: the chain one run per month would give. Each month's scores and drift
    # read the version that was Production after its month's decision.
    by_month: dict[str, int | None] = {}
    with promotion_lock(warehouse.url()):
        for as_of in months:
            moved = decide_and_move(
                client, run=context.run.run_id, min_auc_gain=config.min_auc_gain, up_to=as_of
            )
            context.log.info(f"{as_of}: {moved.decision.action}: {moved.decision.reason}")
            by_month[as_of] = moved.production
    return dg.MaterializeResult(
        metadata={
            **_decision_metadata(moved),
            PRODUCTION_BY_MONTH: dg.MetadataValue.json(by_month),
        }
    )


# production_model's metadata in a run over a range: the Production version after each month.
PRODUCTION_BY_MONTH = "production_by_month"


def production_version_for(context: dg.AssetExecutionContext, client, as_of: str):
    """The version that was Production after `as_of`'s decision: read from this run's
    production_model when it decided over a range, else the current `production` alias."""
    from ..ml.registry import PRODUCTION_ALIAS, alias_version, get_version

    records = context.instance.get_records_for_run(
        context.run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
    ).records
    for record in reversed(records):
        materialization = record.event_log_entry.asset_materialization
        if materialization.asset_key != dg.AssetKey("production_model"):
            continue
        by_month = materialization.metadata.get(PRODUCTION_BY_MONTH)
        if by_month is not None and as_of in by_month.value:
            version = by_month.value[as_of]
            return get_version(client, version) if version is not None else None
        break
    return alias_version(client, PRODUCTION_ALIAS)


def _decision_metadata(moved) -> dict:
    decision = moved.decision
    challenger, champion = decision.challenger, decision.champion
    return {
        "decision": str(decision.action),
        "reason": decision.reason,
        "production_version": moved.production if moved.production else "none",
        "previous_version": moved.previous if moved.previous else "none",
        "challenger": f"v{challenger.version} ({challenger.as_of})" if challenger else "none",
        "challenger_auc": _auc(challenger),
        "champion": f"v{champion.version} ({champion.as_of})" if champion else "none",
        "champion_auc": _auc(champion),
        "min_auc_gain": decision.min_auc_gain,
        "recorded_at": moved.recorded_at or "nothing recorded (no change)",
    }


def _auc(contender) -> float | str:
    return round(contender.auc, 4) if contender and contender.auc is not None else "n/a"


@dg.asset(
    partitions_def=AS_OF_PARTITIONS,
    deps=[production_model, *FEATURE_MARTS, feast_registry],
    group_name=MODELS_GROUP,
    kinds={"postgres", "mlflow"},
    code_version=code_version(),
    backfill_policy=dg.BackfillPolicy.single_run(),
)
def churn_scores(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    mlflow_store: MlflowStoreResource,
    feast: FeastResource,
):
    """Every user of the month scored by the production model (scores.churn_scores)."""
    yield from materialize_months(
        context, lambda as_of: _score_month(context, warehouse, mlflow_store, feast, as_of)
    )


def _score_month(context, warehouse, mlflow_store, feast, as_of_key: str):
    from ..features.specs import service_views
    from ..ml.dataset import model_features
    from ..ml.registry import FEATURE_SERVICE_TAG, PRODUCTION_ALIAS
    from ..ml.registry import load_version as load_registered
    from ..ml.scoring import SCORES_SCHEMA, SCORES_TABLE, score_month

    as_of = validate_as_of(as_of_key)
    client = mlflow_store.client(step="churn_scores", month=str(as_of))
    version = production_version_for(context, client, as_of_key)
    if version is None:
        raise RuntimeError(
            f"No model holds alias `{PRODUCTION_ALIAS}` yet, so {as_of} cannot be scored: see "
            "production_model's latest decision (or `streamflow model promote VERSION`)"
        )
    model = load_registered(client, version.version)
    service = version.tags.get(FEATURE_SERVICE_TAG, feast.feature_service)
    url = warehouse.url()
    views = service_views(feast.store(url), service)  # the model's own feature service
    with warehouse.connect() as conn:
        scores = score_month(conn, views, as_of, model, int(version.version), model_features(model))
    context.log.info(
        f"{as_of}: {scores.rows:,} users scored by v{scores.model_version} (read "
        f"{scores.read_seconds:.1f} s, score {scores.score_seconds:.1f} s, write "
        f"{scores.write_seconds:.1f} s)"
    )
    return dg.MaterializeResult(
        metadata={
            "as_of": str(as_of),
            "dagster/row_count": scores.rows,
            "model_version": scores.model_version,
            "feature_service": service,
            "predicted_churn_rate": round(scores.predicted_churn_rate, 4),
            "mean_churn_probability": round(scores.mean_probability, 4),
            "table": f"{SCORES_SCHEMA}.{SCORES_TABLE}",
            "seconds": round(scores.read_seconds + scores.score_seconds + scores.write_seconds, 2),
        }
    )


MODEL_ASSETS = [churn_model, production_model, churn_scores]
