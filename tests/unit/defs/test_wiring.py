"""The model assets' wiring (no database): keys, lineage, partitions, blocking checks, resources;
and the MLflow store's URIs and UI command."""

from __future__ import annotations

import gc

import dagster as dg
import pytest
from dagster._core.storage.defs_state.base import set_defs_state_storage

from streamflow_dagster.defs.features import FEATURE_ASSETS
from streamflow_dagster.defs.models import MODEL_ASSETS, MODEL_CHECK_SPECS
from streamflow_dagster.defs.resources import FeastResource, WarehouseResource, model_resources
from streamflow_dagster.platform.mlflow_store import backend_store_uri, redacted, sqlalchemy_uri


@pytest.fixture(autouse=True)
def no_state_storage_of_an_earlier_test():
    """Loading Definitions reads the current instance's defs-state storage (a context variable
    an instance sets when it is created). Under pytest-xdist an earlier test in the same worker
    can leave it pointing at an instance already collected ("Attempted to resolve undefined
    DagsterInstance weakref"); these tests need no instance at all.

    Setting it to None is not enough alone: an instance entered inside a generator that an
    earlier test left unfinished resets the variable when the generator is collected, which
    can be in the middle of this test (it failed so once in a fresh-clone suite). So: collect
    first, which runs those resets now, then clear the variable, and keep the cycle collector
    off until the test ends (these tests build a few Definitions and no more)."""
    gc.collect()
    gc.disable()
    try:
        with set_defs_state_storage(None):
            yield
    finally:
        gc.enable()


def definitions() -> dg.Definitions:
    return dg.Definitions(
        assets=[*FEATURE_ASSETS, *MODEL_ASSETS],
        resources={
            "warehouse": WarehouseResource(database_url="postgresql://u@localhost/db"),
            "feast": FeastResource(),
            **model_resources(),
        },
    )


def test_model_assets_load_with_their_resources():
    dg.Definitions.validate_loadable(definitions())


def test_lineage_and_partitions():
    graph = definitions().resolve_asset_graph()
    key = dg.AssetKey
    assert key("training_set") in graph.get(key("churn_model")).parent_keys
    assert graph.get(key("production_model")).parent_keys == {key("churn_model")}
    assert key("production_model") in graph.get(key("churn_scores")).parent_keys
    assert graph.get(key("churn_model")).partitions_def is not None
    assert graph.get(key("churn_scores")).partitions_def is not None
    assert graph.get(key("production_model")).partitions_def is None


def test_checks_that_guard_promotion_are_blocking():
    assert {spec.name for spec in MODEL_CHECK_SPECS} == {
        "auc_above_floor",
        "predictions_not_degenerate",
        "loads_from_registry",
    }
    assert all(spec.blocking for spec in MODEL_CHECK_SPECS)


def test_store_uris_use_psycopg_and_the_mlflow_database():
    server = "postgresql://postgres@127.0.0.1:5433/streamflow"
    assert backend_store_uri(server) == "postgresql+psycopg://postgres@127.0.0.1:5433/mlflow"
    assert sqlalchemy_uri("postgresql://u@h/x") == "postgresql+psycopg://u@h/x"
    assert (
        redacted("postgresql+psycopg://u:secret@h/mlflow") == "postgresql+psycopg://u:***@h/mlflow"
    )
