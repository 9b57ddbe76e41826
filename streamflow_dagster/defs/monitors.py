"""Monitoring as assets: feature drift per month, realized performance once labels land.

Nothing is downstream of the monitors, so no check of theirs protects anything. The drift
checks are blocking all the same: a month whose features drifted past ERROR_PSI is not
materialized (defs/checks.py `stop_on_blocking`, per month by defs/ranges.py), so it shows
failed, red, in feature_drift's partitions and its run fails, as a month that needs a
person's look should. WARN-level drift and a weaker realized AUC warn (yellow) and leave the
month green.
"""

from dataclasses import replace

import dagster as dg

from ..monitoring.decisions import PREVIOUS_MONTH, PRODUCTION_MONTH
from ..monitoring.drift import ERROR_PSI, NUMERIC_BINS, WARN_PSI
from ..monitoring.performance import AUC_MARGIN_SE, MIN_AUC_MARGIN
from ..platform.settings import load_settings
from .calibration import CALIBRATION_CHECK, CALIBRATION_CHECK_SPEC
from .checks import to_check_result
from .features import FEATURE_MARTS, LABELS_MART, feast_registry
from .models import churn_scores, decision_chain_for, production_model
from .monitor_skew import serving_skew
from .partitions import AS_OF_PARTITIONS, partition_months, validate_as_of
from .ranges import materialize_months
from .reports import log_monitor_report
from .resources import FeastResource, MlflowStoreResource, WarehouseResource

MONITORING_GROUP = "monitoring"
DRIFT_VS_PREVIOUS_CHECK = "drift_vs_previous_month"
DRIFT_VS_PRODUCTION_CHECK = "drift_vs_production_training_month"
REALIZED_AUC_CHECK = "realized_auc_within_margin"
# Rows of the top-drifted table in the asset's metadata (the report has every feature).
TOP_DRIFTED_ROWS = 5


class FeatureDriftConfig(dg.Config):
    warn_psi: float = WARN_PSI
    error_psi: float = ERROR_PSI
    numeric_bins: int = NUMERIC_BINS


@dg.asset(
    partitions_def=AS_OF_PARTITIONS,
    deps=[*FEATURE_MARTS, feast_registry, production_model],
    group_name=MONITORING_GROUP,
    kinds={"postgres", "feast"},
    check_specs=[
        dg.AssetCheckSpec(
            DRIFT_VS_PREVIOUS_CHECK,
            asset="feature_drift",
            blocking=True,
            description="Max PSI of the month's features vs the previous landed month "
            f"(warn >= {WARN_PSI}, error >= {ERROR_PSI}).",
            partitions_def=AS_OF_PARTITIONS,
        ),
        dg.AssetCheckSpec(
            DRIFT_VS_PRODUCTION_CHECK,
            asset="feature_drift",
            blocking=True,
            description="Max PSI of the month's features vs the month the Production model "
            f"was trained on (warn >= {WARN_PSI}, error >= {ERROR_PSI}).",
            partitions_def=AS_OF_PARTITIONS,
        ),
    ],
    backfill_policy=dg.BackfillPolicy.single_run(),
)
def feature_drift(
    context: dg.AssetExecutionContext,
    config: FeatureDriftConfig,
    warehouse: WarehouseResource,
    mlflow_store: MlflowStoreResource,
    feast: FeastResource,
):
    """PSI drift of the month's model features vs last month and the Production training month."""
    months = partition_months(context)
    client = mlflow_store.client(step="feature_drift", month=months[-1])
    chain = decision_chain_for(warehouse, client, context.run.run_id)  # once for the step
    yield from materialize_months(
        context,
        lambda as_of: _drift_month(context, config, warehouse, mlflow_store, feast, as_of, chain),
    )


def _drift_month(context, config, warehouse, mlflow_store, feast, as_of_key: str, chain):
    from ..features.specs import service_views
    from ..features.store import feature_names
    from ..ml.registry import AS_OF_TAG
    from ..ml.scoring import read_month_features
    from ..monitoring.decisions import drift_references
    from ..monitoring.drift import compare_months, drift_outcome, watched_service
    from ..monitoring.queries import previous_month
    from ..monitoring.report import psi_bar_png, write_report

    as_of = validate_as_of(as_of_key)
    store = feast.store(warehouse.url())
    production = chain.champion(as_of_key)
    # The features the month's model reads (churn_v2's 26 when it won), else the default's.
    service = watched_service(production.tags if production else None, feast.feature_service)
    views = service_views(store, service)
    features = feature_names(store, service)
    with warehouse.connect() as conn:
        current = read_month_features(conn, views, as_of)
        if current.empty:
            raise RuntimeError(
                f"The marts have no users for {as_of}: materialize its marts (dbt_models) first"
            )
        chosen = drift_references(
            as_of,
            previous_month(conn, views, as_of),
            str(production.version) if production else None,
            production.tags.get(AS_OF_TAG) if production else None,
        )
        frames = {
            month: read_month_features(conn, views, validate_as_of(month))
            for month in chosen.to_read(as_of)
        }
    references, reasons = chosen.months, dict(chosen.reasons)
    comparisons = {}
    for label, month in references.items():
        if month in frames and not frames[month].empty:
            comparisons[label] = compare_months(
                frames[month],
                current,
                features,
                reference_label=label,
                reference_as_of=month,
                current_as_of=str(as_of),
                bins=config.numeric_bins,
            )
        elif month in frames:
            reasons[label] = f"no reference month: the marts have no users for {month}"
    outcomes = {
        check: drift_outcome(
            comparisons.get(label), reasons[label], config.warn_psi, config.error_psi
        )
        for check, label in (
            (DRIFT_VS_PREVIOUS_CHECK, PREVIOUS_MONTH),
            (DRIFT_VS_PRODUCTION_CHECK, PRODUCTION_MONTH),
        )
    }
    notes = [reasons[label] for label in references if label not in comparisons]
    psi_pngs = {  # drawn once: in the report and (one of them) in the asset's metadata
        label: psi_bar_png(comparison, config.warn_psi, config.error_psi)
        for label, comparison in comparisons.items()
    }
    page = _drift_report_page(str(as_of), comparisons, psi_pngs, frames, current, notes, config)
    report = write_report(load_settings().home / "reports" / "drift" / f"{as_of}.html", page)
    context.log.info(f"{as_of}: drift report at {report}")
    # ERROR drift: the month is not materialized, it shows failed (defs/ranges.py).
    links = log_monitor_report(
        context, mlflow_store, monitor="feature_drift", as_of=str(as_of), html=page
    )
    return dg.MaterializeResult(
        metadata={
            **_drift_metadata(
                str(as_of), len(features), references, comparisons, psi_pngs, notes, report
            ),
            "feature_service": service,
            **links,
        },
        check_results=[to_check_result(check, outcome) for check, outcome in outcomes.items()],
    )


def _drift_report_page(as_of, comparisons, psi_pngs, frames, current, notes, config) -> str:
    from ..monitoring.report import ReportSection, drift_report_html

    sections = [
        ReportSection(comparison, frames[comparison.reference_as_of], current, psi_pngs[label])
        for label, comparison in comparisons.items()
    ]
    return drift_report_html(as_of, sections, notes, config.warn_psi, config.error_psi)


def _drift_metadata(as_of, feature_count, references, comparisons, psi_pngs, notes, report) -> dict:
    from ..monitoring.report import png_markdown

    metadata = {
        "as_of": as_of,
        "features": feature_count,
        "previous_month": references[PREVIOUS_MONTH] or "none",
        "production_training_month": references[PRODUCTION_MONTH] or "none",
        "report": dg.MetadataValue.path(str(report)),  # a local copy; report_url is MLflow's
    }
    if not comparisons:
        return {**metadata, "drift_level": "no reference month", "result": "; ".join(notes)}
    worst_label = max(comparisons, key=lambda label: comparisons[label].max_psi)
    worst = comparisons[worst_label]
    metadata["max_psi"] = round(worst.max_psi, 4)
    metadata["drift_level"] = worst.level
    for label, key in ((PREVIOUS_MONTH, "previous"), (PRODUCTION_MONTH, "production")):
        if label in comparisons:
            metadata[f"max_psi_vs_{key}_month"] = round(comparisons[label].max_psi, 4)
    metadata["result"] = "; ".join(
        [
            *(
                f"vs {c.reference} {c.reference_as_of}: max PSI {c.max_psi:.3f} "
                f"({c.features[0].feature}, {c.level})"
                for c in comparisons.values()
            ),
            *notes,
        ]
    )
    metadata["top_drifted"] = dg.MetadataValue.md(_top_drifted_table(comparisons))
    chart = PREVIOUS_MONTH if PREVIOUS_MONTH in comparisons else worst_label
    metadata["psi_chart"] = dg.MetadataValue.md(png_markdown(psi_pngs[chart], "PSI per feature"))
    return metadata


def _top_drifted_table(comparisons: dict) -> str:
    labels = list(comparisons)
    by_feature = {label: {f.feature: f.psi for f in c.features} for label, c in comparisons.items()}
    worst = sorted(
        by_feature[labels[0]], key=lambda f: max(by_feature[lb][f] for lb in labels), reverse=True
    )
    header = "| feature | " + " | ".join(
        f"PSI vs {comparisons[lb].reference_as_of} ({lb})" for lb in labels
    )
    lines = [header + " |", "|---" * (len(labels) + 1) + "|"]
    for feature in worst[:TOP_DRIFTED_ROWS]:
        values = " | ".join(f"{by_feature[lb][feature]:.3f}" for lb in labels)
        lines.append(f"| {feature} | {values} |")
    return "\n".join(lines)


class RealizedPerformanceConfig(dg.Config):
    margin_sds: float = AUC_MARGIN_SE
    min_margin: float = MIN_AUC_MARGIN


@dg.asset(
    partitions_def=AS_OF_PARTITIONS,
    deps=[churn_scores, LABELS_MART],
    group_name=MONITORING_GROUP,
    kinds={"postgres", "mlflow"},
    check_specs=[
        dg.AssetCheckSpec(
            REALIZED_AUC_CHECK,
            asset="realized_performance",
            description="Realized AUC of the month's scores is not below the scoring model's "
            f"holdout AUC (its MLflow run's `auc`) by more than max({MIN_AUC_MARGIN}, "
            f"{AUC_MARGIN_SE:g} standard errors of the difference); warns, never blocks. "
            "Months scored by a model trained on the month itself (in-sample) report "
            "`in_sample_auc`, never `auc`: the `auc` series holds out-of-time estimates only.",
            partitions_def=AS_OF_PARTITIONS,
        ),
        CALIBRATION_CHECK_SPEC,
    ],
    backfill_policy=dg.BackfillPolicy.single_run(),
)
def realized_performance(
    context: dg.AssetExecutionContext,
    config: RealizedPerformanceConfig,
    warehouse: WarehouseResource,
    mlflow_store: MlflowStoreResource,
):
    """How well the month's churn scores ranked the churners and how calibrated their
    probabilities were, once its labels have landed."""
    yield from materialize_months(
        context,
        lambda as_of: _performance_month(context, config, warehouse, mlflow_store, as_of),
    )


def _performance_month(context, config, warehouse, mlflow_store, as_of_key: str):
    from ..ml.registry import AS_OF_TAG, get_version
    from ..monitoring.decisions import (
        Expectation,
        holdout_expectation,
        out_of_time,
        out_of_time_caveat,
        scoring_model,
        tag_month,
    )
    from ..monitoring.performance import performance_outcome, realized_performance
    from ..monitoring.queries import label_rows, scores_with_labels
    from .calibration import calibration_results

    as_of = validate_as_of(as_of_key)
    with warehouse.connect() as conn:
        labels = label_rows(conn, as_of)
        scored = scores_with_labels(conn, as_of)
    if labels == 0:
        message = (
            f"labels for {as_of} have not landed yet: re-materialize realized_performance for "
            f"{as_of} once its labels.csv has landed and churn_labels is built"
        )
        context.log.warning(message)
        return dg.MaterializeResult(
            metadata={"as_of": str(as_of), "labels_landed": False, "result": message},
            check_results=[
                dg.AssetCheckResult(
                    check_name=check,
                    passed=True,  # nothing is wrong: labels arrive a month late
                    severity=dg.AssetCheckSeverity.WARN,
                    description=f"Nothing to evaluate yet: {message}",
                    metadata={"labels_landed": False},
                )
                for check in (REALIZED_AUC_CHECK, CALIBRATION_CHECK)
            ],
        )
    if scored.empty:
        raise RuntimeError(
            f"scores.churn_scores has no rows for {as_of}: materialize churn_scores for {as_of} "
            "first"
        )
    labelled = scored.dropna(subset=["label"])
    scoring = scoring_model(labelled["model_version"])
    version = scoring.version or "none"
    performance = realized_performance(
        labelled["label"].to_numpy(dtype=bool), labelled["churn_probability"].to_numpy(dtype=float)
    )
    expected, model_tag, links = Expectation(None, 0.0, ""), None, {}
    if scoring.version is not None:
        client = mlflow_store.client(step="realized_performance", month=as_of_key)
        model = get_version(client, scoring.version)
        model_tag = model.tags.get(AS_OF_TAG)
        metrics = client.get_run(model.run_id).data.metrics if model.run_id else {}
        expected = holdout_expectation(metrics, scoring.version)
        links = _model_links(client, model, mlflow_store.ui_url)
    outcome = performance_outcome(
        performance, expected.auc, version, expected.se, config.margin_sds, config.min_margin
    )
    # Scores are meant to be made before the month's labels exist (by an older month's model);
    # a model trained on this month or later has seen these users' outcomes or later ones.
    model_month = tag_month(model_tag)
    scored_out_of_time = out_of_time(model_month, as_of)
    notes = [expected.note]
    if scoring.version is not None:
        notes.append(out_of_time_caveat(scoring.version, model_month, model_tag, as_of))
    caveat = "".join(f" {note}" for note in notes if note)
    context.log.info(outcome.description + caveat)
    calibration_metadata, calibration_check, page = calibration_results(
        str(as_of),
        labelled["label"].to_numpy(dtype=bool),
        labelled["churn_probability"].to_numpy(dtype=float),
        version,
        [note for note in notes if note],
    )
    if page is not None:  # over HTTP from the UI: MLflow renders the page (defs/reports.py)
        calibration_metadata |= log_monitor_report(
            context,
            mlflow_store,
            monitor="realized_performance",
            as_of=str(as_of),
            html=page,
            key="calibration_report",
        )
    context.log.info(calibration_check.description)
    metadata = {
        "as_of": str(as_of),
        "labels_landed": True,
        "dagster/row_count": performance.rows,
        "scored_users": len(scored),
        "scored_without_label": len(scored) - len(labelled),
        "churn_rate": round(performance.churn_rate, 4),
        "precision_top_decile": round(performance.precision_top_decile, 4),
        "lift_top_decile": round(performance.lift_top_decile, 2),
        "model_version": version,
        "model_versions": ", ".join(f"v{v}: {n}" for v, n in scoring.versions.items()) or "none",
        "model_as_of": str(model_month) if model_month else (model_tag or "unknown"),
        "scored_out_of_time": "unknown" if scored_out_of_time is None else scored_out_of_time,
        "result": outcome.description + caveat,
        **links,
    }
    if performance.auc is not None:
        # The `auc` series (plotted across months) holds out-of-time estimates only; a month
        # scored by a model that saw its labels (or an unknown one) is named and kept apart.
        series = "auc" if scored_out_of_time else "in_sample_auc"
        metadata[series] = round(performance.auc, 4)
        metadata[f"{series}_se"] = round(performance.auc_se or 0.0, 4)
        if not scored_out_of_time:
            metadata["excluded_from_auc_series"] = (
                f"{as_of}: scored by v{version} trained on {metadata['model_as_of']}"
            )
    if expected.auc is not None:
        metadata["expected_auc"] = round(expected.auc, 4)
    return dg.MaterializeResult(
        metadata={**metadata, **calibration_metadata},
        check_results=[
            calibration_check,
            to_check_result(
                REALIZED_AUC_CHECK,
                replace(
                    outcome,
                    description=outcome.description + caveat,
                    metadata={
                        **outcome.metadata,
                        "scored_out_of_time": metadata["scored_out_of_time"],
                    },
                ),
            ),
        ],
    )


def _model_links(client, model, ui_url: str) -> dict[str, dg.MetadataValue]:
    """Links to the scoring model's version and its training run in MLflow's UI."""
    from ..ml.report_links import mlflow_run_url, mlflow_version_url

    links = {"model_version_url": dg.MetadataValue.url(mlflow_version_url(ui_url, model.version))}
    if model.run_id:
        experiment = client.get_run(model.run_id).info.experiment_id
        url = mlflow_run_url(ui_url, experiment, model.run_id)
        links["model_mlflow_run_url"] = dg.MetadataValue.url(url)
    return links


MONITOR_ASSETS = [feature_drift, realized_performance, serving_skew]
