"""One month's MLflow run: params, metrics, plots, holdout, the model, its registered version.

The caller owns the run (dagster-mlflow starts it; tests use mlflow.start_run). Everything is
logged in as few round trips as possible: one log_batch, one log_artifacts, one log_model
(signature and requirements given, so MLflow infers nothing), one create_model_version.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import mlflow
import mlflow.sklearn
import pandas as pd
from mlflow.entities import Metric, Param, RunTag
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient

from . import code_version as models_code_version
from .dataset import CATEGORICAL_FEATURES, HOLDOUT_ROWS_METRIC, LABEL
from .evaluation import Evaluation
from .plots import write_plots
from .registry import (
    AS_OF_TAG,
    CODE_VERSION_TAG,
    DAGSTER_RUN_TAG,
    FEATURE_SERVICE_TAG,
    HOLDOUT_ARTIFACT,
    register_version,
    version_uri,
)
from .serialization import SERIALIZATION_FORMAT, TRUSTED_TYPES, pip_requirements
from .threads import openmp_limited
from .training import TrainedModel

MODEL_NAME = "model"  # the logged model's name within the run
INPUT_EXAMPLE_ROWS = 5
PLOTS_DIR = "plots"
FEATURES_ARTIFACT = "features.json"


@dataclass(frozen=True)
class LoggedMonth:
    run_id: str
    version: str  # registered version of streamflow_churn
    model_uri: str  # models:/streamflow_churn/<version>
    metrics: dict[str, float]
    plots: dict[str, Path]  # local copies of the plots (valid until the workdir goes)


def log_month(
    client: MlflowClient,
    trained: TrainedModel,
    evaluation: Evaluation,
    *,
    as_of: str,
    feature_service: str,
    dagster_run_id: str,
    workdir: Path,
    extra_metrics: dict[str, float] | None = None,
    extra_tags: dict[str, str] | None = None,
    holdout_features: list[pd.DataFrame] | None = None,
) -> LoggedMonth:
    """Log the month into the active MLflow run and register its model as a new version.

    `extra_metrics` and `extra_tags` (the comparison of feature services) go on the run and,
    for the tags, on the version; `holdout_features`: the holdout rows' columns of every
    compared service's model, logged with the holdout so that any later champion, whatever
    its service, is scored on exactly these rows.
    """
    run = mlflow.active_run()
    if run is None:
        raise RuntimeError("log_month needs an active MLflow run (mlflow.start_run)")
    run_id = run.info.run_id
    code_version = models_code_version()
    identity = {
        AS_OF_TAG: as_of,
        DAGSTER_RUN_TAG: dagster_run_id,
        CODE_VERSION_TAG: code_version,
        FEATURE_SERVICE_TAG: feature_service,
    }
    metrics = {
        **evaluation.metrics,
        "rows": float(sum(trained.split.rows.values())),
        # The realized-performance monitor's s.e. of the holdout AUC needs the holdout's size
        # as it was, not as today's split share would rebuild it.
        HOLDOUT_ROWS_METRIC: float(trained.split.rows["holdout"]),
        "train_seconds": trained.train_seconds,
        **{f"validation_auc.{name}": auc for name, auc in trained.validation_auc.items()},
        **(extra_metrics or {}),
    }
    params = {**trained.params, "feature_service": feature_service, "as_of": as_of}
    client.log_batch(
        run_id,
        params=[Param(key, str(value)) for key, value in params.items()],
        tags=[
            RunTag(key, value)
            for key, value in {
                **identity,
                "algorithm": trained.algorithm,
                **(extra_tags or {}),
            }.items()
        ],
    )
    plots = _write_artifacts(
        workdir, trained, evaluation, as_of, feature_service, holdout_features or []
    )
    client.log_artifacts(run_id, str(workdir / "artifacts"))

    example = trained.split.X_holdout.head(INPUT_EXAMPLE_ROWS)
    with openmp_limited():  # MLflow predicts on the example to validate it
        info = mlflow.sklearn.log_model(
            trained.model,
            name=MODEL_NAME,
            signature=infer_signature(example, trained.model.predict(example)),
            input_example=example,
            pip_requirements=pip_requirements(),
            serialization_format=SERIALIZATION_FORMAT,
            skops_trusted_types=list(TRUSTED_TYPES),
            metadata={"threshold": trained.threshold, "features": trained.features, **identity},
            tags={**identity, "algorithm": trained.algorithm},
        )
    # Logged after the model, with its id: the metrics then show on the run and on the model.
    logged_at = int(time.time() * 1000)
    client.log_batch(
        run_id,
        metrics=[
            Metric(key, float(value), logged_at, 0, model_id=info.model_id)
            for key, value in metrics.items()
        ],
    )
    version = register_version(
        client,
        source=info.model_uri,
        run_id=run_id,
        model_id=info.model_id,
        tags={
            **identity,
            "algorithm": trained.algorithm,
            "threshold": f"{trained.threshold:.6f}",
            "holdout_auc": f"{evaluation.metrics['auc']:.6f}",
            **(extra_tags or {}),
        },
    )
    number = str(version.version)
    return LoggedMonth(run_id, number, version_uri(number), metrics, plots)


def _write_artifacts(
    workdir: Path,
    trained: TrainedModel,
    evaluation: Evaluation,
    as_of: str,
    service: str,
    holdout_features: list[pd.DataFrame],
) -> dict[str, Path]:
    """Plots, the feature list and the holdout rows, under workdir/artifacts."""
    root = workdir / "artifacts"
    plots = write_plots(
        root / PLOTS_DIR,
        trained.split.y_holdout,
        evaluation.churn_probability,
        trained.threshold,
        evaluation.importances,
        title=f"{as_of} ({trained.algorithm})",
    )
    (root / FEATURES_ARTIFACT).write_text(
        json.dumps(
            {
                "feature_service": service,
                "features": trained.features,
                "encoded_in_pipeline": {
                    k: list(v) for k, v in CATEGORICAL_FEATURES.items() if k in trained.features
                },
            },
            indent=2,
        )
    )
    holdout = trained.split.X_holdout.copy()
    for other in holdout_features:  # same rows (same index): only the columns it adds
        extra = [c for c in other.columns if c not in holdout.columns]
        holdout[extra] = other.loc[holdout.index, extra]
    holdout.insert(0, "user_id", trained.split.holdout_users)
    holdout[LABEL] = trained.split.y_holdout
    (root / HOLDOUT_ARTIFACT).parent.mkdir(parents=True, exist_ok=True)
    holdout.reset_index(drop=True).to_parquet(root / HOLDOUT_ARTIFACT, index=False)
    return plots


def new_workdir() -> tempfile.TemporaryDirectory:
    return tempfile.TemporaryDirectory(prefix="streamflow-month-")
