"""The MLflow model registry of `streamflow_churn`: versions, their tags, aliases, artifacts.

Aliases replace MLflow's deprecated stages: `production` is what serving loads, `previous`
the version that held `production` just before its latest move (what a rollback restores).
Every fact a decision needs lives in version tags, so the decision can be re-derived.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from .promotion import Contender
from .registry_names import (  # noqa: F401 (callers import the names from here too)
    AS_OF_TAG,
    CHECKS_FAILED,
    CHECKS_PASSED,
    CHECKS_PENDING,
    CHECKS_TAG,
    CODE_VERSION_TAG,
    DAGSTER_RUN_TAG,
    DECIDED_AGAINST_TAG,
    DECISION_BASIS_TAG,
    DECISION_PREFIX,
    DEMOTED_BY_HAND_TAG,
    FAILED_CHECKS_TAG,
    FEATURE_SERVICE_TAG,
    MODEL_DESCRIPTION,
    PREVIOUS_ALIAS,
    PRODUCTION_ALIAS,
    PRODUCTION_AS_OF_TAG,
    PRODUCTION_BY_HAND_TAG,
    REGISTERED_MODEL,
    REPLACED_TAG,
    UNFINISHED_RUN_TAG,
)
from .serialization import load_model_dir

# The month's holdout rows (user_id, features, label), logged with each run: the promotion
# scores the champion on exactly the rows the challenger was evaluated on.
HOLDOUT_ARTIFACT = "holdout/holdout.parquet"


def version_uri(version: int | str) -> str:
    return f"models:/{REGISTERED_MODEL}/{version}"


def ensure_registered_model(client: MlflowClient) -> None:
    if client.search_registered_models(f"name = '{REGISTERED_MODEL}'", max_results=1):
        return
    try:
        client.create_registered_model(REGISTERED_MODEL, description=MODEL_DESCRIPTION)
    except MlflowException as err:
        if err.error_code not in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"):
            raise


def register_version(
    client: MlflowClient, *, source: str, run_id: str, model_id: str, tags: dict[str, str]
) -> ModelVersion:
    """A new version of streamflow_churn from a logged model, its checks still pending."""
    ensure_registered_model(client)
    return client.create_model_version(
        REGISTERED_MODEL,
        source=source,
        run_id=run_id,
        model_id=model_id,
        tags={**tags, CHECKS_TAG: CHECKS_PENDING},
    )


def get_version(client: MlflowClient, version: int | str) -> ModelVersion:
    try:
        return client.get_model_version(REGISTERED_MODEL, str(version))
    except MlflowException as err:
        raise LookupError(
            f"{REGISTERED_MODEL} has no version {version}; list them in the MLflow UI "
            "(`streamflow model ui`)"
        ) from err


def alias_version(client: MlflowClient, alias: str) -> ModelVersion | None:
    """The version holding `alias`, or None (also when the registered model does not exist)."""
    try:
        return client.get_model_version_by_alias(REGISTERED_MODEL, alias)
    except MlflowException as err:
        if err.error_code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND", "INVALID_PARAMETER_VALUE"):
            return None
        raise


def all_versions(client: MlflowClient) -> list[ModelVersion]:
    versions, token = [], None
    while True:
        page = client.search_model_versions(
            f"name = '{REGISTERED_MODEL}'", max_results=1000, page_token=token
        )
        versions.extend(page)
        token = page.token
        if not token:
            return versions


def month_versions(client: MlflowClient) -> dict[str, list[ModelVersion]]:
    """The versions of each AS_OF, oldest first (a re-run month has several)."""
    by_month: dict[str, list[ModelVersion]] = {}
    for version in sorted(all_versions(client), key=lambda v: int(v.version)):
        if version.tags.get(AS_OF_TAG):
            by_month.setdefault(version.tags[AS_OF_TAG], []).append(version)
    return by_month


def model_tags(client: MlflowClient) -> dict[str, str]:
    """The registered model's own tags ({} before the first version)."""
    try:
        return dict(client.get_registered_model(REGISTERED_MODEL).tags)
    except MlflowException as err:
        if err.error_code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND"):
            return {}
        raise


def set_model_tags(client: MlflowClient, tags: dict[str, str]) -> None:
    for key, value in tags.items():
        client.set_registered_model_tag(REGISTERED_MODEL, key, value)


def record_checks(client: MlflowClient, version: str, failed: list[str]) -> None:
    client.set_model_version_tag(
        REGISTERED_MODEL, version, CHECKS_TAG, CHECKS_FAILED if failed else CHECKS_PASSED
    )
    client.set_model_version_tag(REGISTERED_MODEL, version, FAILED_CHECKS_TAG, ",".join(failed))


def contender(version: ModelVersion, auc: float | None = None) -> Contender:
    """The facts a promotion decision reads from a version's tags."""
    tags = version.tags
    failed = tuple(f for f in tags.get(FAILED_CHECKS_TAG, "").split(",") if f)
    return Contender(
        version=int(version.version),
        as_of=tags.get(AS_OF_TAG, "unknown month"),
        auc=auc,
        checks_passed=tags.get(CHECKS_TAG) == CHECKS_PASSED,
        failed_checks=failed,
        demoted_by_hand=tags.get(DEMOTED_BY_HAND_TAG) == "true",
        decided_against=tags.get(DECIDED_AGAINST_TAG),
        unfinished_run=tags.get(UNFINISHED_RUN_TAG) or None,
    )


def download_model(client: MlflowClient, version: int | str, dst: Path) -> Path:
    """The version's MLflow model directory, copied from the artifact store into `dst`."""
    from mlflow.artifacts import download_artifacts

    uri = client.get_model_version_download_uri(REGISTERED_MODEL, str(version))
    # The client's store, not MLflow's process-wide URIs (a models:/ URI is resolved there).
    return Path(
        download_artifacts(
            artifact_uri=uri,
            dst_path=str(dst),
            tracking_uri=client.tracking_uri,
            registry_uri=client.tracking_uri,
        )
    )


def load_version(client: MlflowClient, version: int | str):
    """The version's scikit-learn model, loaded with the declared skops allow-list."""
    with tempfile.TemporaryDirectory(prefix="streamflow-model-") as tmp:
        return load_model_dir(download_model(client, version, Path(tmp)))


def load_holdout(client: MlflowClient, version: ModelVersion) -> pd.DataFrame:
    """The holdout rows logged with the version's run (user_id, features, churn_label)."""
    if not version.run_id:
        raise LookupError(f"v{version.version} has no run, so no holdout to score on")
    with tempfile.TemporaryDirectory(prefix="streamflow-holdout-") as tmp:
        try:
            path = client.download_artifacts(version.run_id, HOLDOUT_ARTIFACT, tmp)
        except (MlflowException, OSError) as err:
            raise LookupError(
                f"v{version.version}'s run {version.run_id} has no {HOLDOUT_ARTIFACT}"
            ) from err
        return pd.read_parquet(path)


def set_alias(client: MlflowClient, alias: str, version: int | str) -> None:
    client.set_registered_model_alias(REGISTERED_MODEL, alias, str(version))


def set_tags(client: MlflowClient, version: int | str, tags: dict[str, str]) -> None:
    for key, value in tags.items():
        client.set_model_version_tag(REGISTERED_MODEL, str(version), key, value)


def delete_tag(client: MlflowClient, version: int | str, key: str) -> None:
    try:
        client.delete_model_version_tag(REGISTERED_MODEL, str(version), key)
    except MlflowException as err:
        if err.error_code not in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND"):
            raise
