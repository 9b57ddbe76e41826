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
        partitions_def=AS_OF_PARTITIONS,
    ),
    dg.AssetCheckSpec(
        NOT_DEGENERATE_CHECK,
        asset="churn_model",
        blocking=True,
        description="The holdout gets both predictions (churn and stay) at the chosen threshold.",
        partitions_def=AS_OF_PARTITIONS,
    ),
    dg.AssetCheckSpec(
        LOADS_BACK_CHECK,
        asset="churn_model",
        blocking=True,
        description="The registered version loads from the registry and scores its input example.",
        partitions_def=AS_OF_PARTITIONS,
    ),
]


class ChurnModelConfig(dg.Config):
    seed: int = SEED
    auc_floor: float = AUC_FLOOR
    # The gain a challenger feature service's model needs over the incumbent's on the same
    # holdout: the promotion rule's (ml/services.py says why).
    min_service_auc_gain: float = MIN_AUC_GAIN


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
    feast: FeastResource,
    mlflow: dg.ResourceParam[Any],
):
    """The month's churn model: one per feature service, compared; the better registered,
    logged to MLflow, checked.

    A model that fails a blocking check is registered (its version says why) but the month
    is not materialized (defs/ranges.py): it shows failed (red) and production_model does not
    run."""
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
        return _train_month(context, config, warehouse, mlflow_store, feast, mlflow, as_of)

    yield from materialize_months(context, one_month)


def _extra_tags(mlflow) -> dict[str, str]:
    return dict(getattr(mlflow, "extra_tags", None) or {})


def _train_month(context, config, warehouse, mlflow_store, feast, mlflow, as_of_key: str):
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
            segments = None
            if rows is not None:
                from ..ml.model_card import segment_attributes

                segments = segment_attributes(conn, str(as_of))
        links = _run_links(mlflow_store, mlflow.active_run().info)
        if rows is None:
            status = "FINISHED"
            return _no_model(context, mlflow, as_of, labels_not_landed_message(as_of), links)
        from ..ml.dataset import NotEnoughLabels
        from ..ml.month import train_compared_month

        services = _service_features(feast, warehouse.url(), rows.columns, as_of)
        try:
            month = train_compared_month(
                client,
                rows,
                services,
                as_of=str(as_of),
                dagster_run_id=context.run.run_id,
                seed=config.seed,
                auc_floor=config.auc_floor,
                segments=segments,
                dagster_ui_url=mlflow_store.dagster_ui_url,
                min_auc_gain=config.min_service_auc_gain,
            )
        except NotEnoughLabels as err:
            status = "FINISHED"
            return _no_model(context, mlflow, as_of, f"{as_of}: {err}", links)
        status = "FINISHED"
        return _model_result(as_of, month, {**links, **_version_links(mlflow_store, month)})
    finally:
        mlflow.end_run(status=status)


def _service_features(feast, url: str, columns, as_of) -> dict[str, list[str]]:
    """{service: its features} of the compared services, all present in the stored month."""
    from ..features.store import feature_names

    store = feast.store(url)
    services = {name: feature_names(store, name) for name in feast.compared_services}
    for name, features in services.items():
        missing = [f for f in features if f not in columns]
        if missing:
            raise RuntimeError(
                f"features.training_set for {as_of} lacks {missing} of feature service {name}: "
                f"re-materialize training_set for {as_of} (it stores every compared service)"
            )
    return services


def _run_links(mlflow_store: MlflowStoreResource, run_info) -> dict[str, dg.MetadataValue]:
    from ..ml.report_links import mlflow_run_url

    url = mlflow_run_url(mlflow_store.ui_url, run_info.experiment_id, run_info.run_id)
    return {"mlflow_run_url": dg.MetadataValue.url(url)}


def _version_links(mlflow_store: MlflowStoreResource, month) -> dict[str, dg.MetadataValue]:
    from ..ml.model_card import CARD_ARTIFACT
    from ..ml.report_links import mlflow_artifact_url, mlflow_version_url

    ui, run = mlflow_store.ui_url, month.logged
    experiment = mlflow_store.client(step="churn_model").get_run(run.run_id).info.experiment_id
    return {
        "model_version_url": dg.MetadataValue.url(mlflow_version_url(ui, run.version)),
        "model_card_url": dg.MetadataValue.url(
            mlflow_artifact_url(ui, experiment, run.run_id, CARD_ARTIFACT)
        ),
        "model_card": dg.MetadataValue.md(month.card),
    }


def _no_model(context, mlflow, as_of, reason: str, links: dict) -> dg.MaterializeResult:
    """A month that yields no model: recorded on the MLflow run, in the UI, and in the checks."""
    context.log.warning(f"No model for {as_of}: {reason}")
    mlflow.set_tags({"outcome": "no model", "reason": reason[:4900]})
    return dg.MaterializeResult(
        metadata={"as_of": str(as_of), "model_version": "none", "reason": reason, **links},
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


def _model_result(as_of, month, links: dict) -> dg.MaterializeResult:
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
            **links,
            **_services_metadata(month.services),
        },
        check_results=[to_check_result(name, outcome) for name, outcome in month.checks.items()],
    )


def _services_metadata(services) -> dict:
    if services is None:
        return {}
    return {
        "feature_service": services.service,
        "feature_services_holdout_auc": dg.MetadataValue.json(
            {r.service: round(r.holdout_auc, 4) for r in services.results}
        ),
        "feature_service_reason": services.reason,
    }


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
    """Alias `production`: the decision chain's champion, month by month in AS_OF order."""
    from ..ml.champion import promotion_lock
    from ..ml.decision_chain import decide_and_move

    client = mlflow_store.client(step="production_model")
    end_orphaned_runs(context, client)  # their versions are marked: never promoted
    # The chain decides every month up to the run's newest (ml/decision_chain.py): a run over
    # a range records each month's decision on its version, as one run per month would.
    months = run_months(context.run.tags)
    with promotion_lock(warehouse.url()):
        moved = decide_and_move(
            client,
            run=context.run.run_id,
            min_auc_gain=config.min_auc_gain,
            as_of=months[-1] if months else None,
            # A range's earlier months are decided here too: each on its own version's card.
            on_other_decision=lambda other: _record_on_card(
                context, client, other, mlflow_store.dagster_ui_url
            ),
        )
    decision = moved.decision
    context.log.info(f"{decision.action}: {decision.reason}")
    _record_on_card(context, client, moved, mlflow_store.dagster_ui_url)
    return dg.MaterializeResult(
        metadata={**_decision_metadata(moved), **_decision_links(moved, mlflow_store.ui_url)}
    )


def _record_on_card(context, client, moved, dagster_ui_url: str) -> None:
    """The decision, written into the model card of the version it decided about."""
    from ..ml.model_card import record_move
    from ..ml.report_links import dagster_run_url

    url = dagster_run_url(dagster_ui_url, context.run.run_id)
    if moved.recorded_at is not None and not record_move(client, moved, url):
        context.log.info("the decided version has no model card to record the decision on")


def _decision_links(moved, ui_url: str) -> dict[str, dg.MetadataValue]:
    from ..ml.report_links import mlflow_version_url

    decision = moved.decision
    versions = {
        "production_version_url": moved.production,
        "previous_version_url": moved.previous,
        "challenger_version_url": decision.challenger.version if decision.challenger else None,
        "champion_version_url": decision.champion.version if decision.champion else None,
    }
    return {
        key: dg.MetadataValue.url(mlflow_version_url(ui_url, version))
        for key, version in versions.items()
        if version is not None
    }


def decision_chain_for(warehouse: WarehouseResource, client, run_id: str):
    """The decision chain as it stands: its `champion(as_of)` is what scored that month,
    whatever the order the months ran in. A step over a range walks it once."""
    from ..ml.champion import promotion_lock
    from ..ml.decision_chain import walk_registry

    with promotion_lock(warehouse.url()):
        return walk_registry(client, run=run_id)


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
    """Every user of the month scored by the champion as of the month (scores.churn_scores)."""
    from ..ml.champion import promotion_lock
    from ..ml.decision_chain import walk_registry

    client = mlflow_store.client(step="churn_scores", month=partition_months(context)[-1])
    url = warehouse.url()
    store = feast.store(url)
    # One lock with the decisions for the whole step: its months are scored by the chain as
    # it stands (walked once for the step, as a run per month would find it with no other
    # run between them), and a chain changed by a month trained late is followed by new
    # scores for the months after it. Each version's model is loaded once for the step.
    with promotion_lock(url):
        chain = walk_registry(client, run=context.run.run_id)
        models: dict = {}
        yield from materialize_months(
            context,
            lambda as_of: _score_month(
                context, warehouse, mlflow_store, feast, as_of, (client, store, chain, models)
            ),
        )


def _score_month(context, warehouse, mlflow_store, feast, as_of_key: str, step):
    from ..ml.month_scores import score_by, stale_later_months
    from ..ml.report_links import mlflow_version_url
    from ..ml.scoring import SCORES_SCHEMA, SCORES_TABLE

    as_of = validate_as_of(as_of_key)
    client, store, chain, models = step
    with warehouse.connect() as conn:
        version = chain.champion(str(as_of))
        if version is None:
            raise RuntimeError(
                f"No model of a month up to {as_of} was promoted, so {as_of} cannot be scored: "
                "see production_model's decisions (decision.* tags of each month's version), "
                "run an earlier month with labels, or `streamflow model promote VERSION`"
            )
        scores, service = score_by(
            client, conn, store, feast.feature_service, version, as_of, models
        )
        for month, champion in stale_later_months(conn, chain, as_of):
            again, _ = score_by(client, conn, store, feast.feature_service, champion, month, models)
            context.log.info(f"{month}: scored again by v{again.model_version}, its champion now")
            context.log_event(
                dg.AssetMaterialization(
                    asset_key=context.asset_key,
                    partition=month.isoformat(),
                    description=f"scored again: {as_of}'s model changed the champion as of {month}",
                    metadata={
                        "model_version": again.model_version,
                        "dagster/row_count": again.rows,
                    },
                )
            )
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
            "model_as_of": version.tags.get("as_of", "?"),
            "model_version_url": dg.MetadataValue.url(
                mlflow_version_url(mlflow_store.ui_url, scores.model_version)
            ),
            "feature_service": service,
            "predicted_churn_rate": round(scores.predicted_churn_rate, 4),
            "mean_churn_probability": round(scores.mean_probability, 4),
            "table": f"{SCORES_SCHEMA}.{SCORES_TABLE}",
            "seconds": round(scores.read_seconds + scores.score_seconds + scores.write_seconds, 2),
        }
    )


def run_month(tags: dict[str, str]) -> str | None:
    """The AS_OF a run is for: its partition, or the last month of a ranged run."""
    # Dagster's run tags for one partition and for a partition range.
    return tags.get("dagster/partition") or tags.get("dagster/asset_partition_range_end")


MODEL_ASSETS = [churn_model, production_model, churn_scores]
