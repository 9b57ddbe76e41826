"""Pure helpers of the feature store: environment, code version, Feast's key layout."""

from __future__ import annotations

import os
import shutil

import pytest
import yaml

from streamflow_dagster.features.encoding import (
    ENTITY_KEY_VERSION,
    check_entity_key_version,
    entity_key_prefix,
)
from streamflow_dagster.features.registry import repo_code_version
from streamflow_dagster.features.store import expand_variables, feast_env, repo_config
from streamflow_dagster.platform.settings import FEATURE_REPO_DIR

URL = "postgresql://postgres@127.0.0.1:5433/streamflow"


def test_feast_env_defaults_to_prefer_ssl_and_utc():
    env = feast_env(URL)
    assert env["STREAMFLOW_PG_SSLMODE"] == "prefer"  # Feast's own default, require, fails
    assert env["PGTZ"] == "UTC"
    assert (env["STREAMFLOW_PG_PORT"], env["STREAMFLOW_PG_PASSWORD"]) == ("5433", "")


def test_feast_env_keeps_the_sslmode_of_an_external_url():
    env = feast_env("postgresql://app:s3cret@db.example:5432/prod?sslmode=verify-full")
    assert env["STREAMFLOW_PG_SSLMODE"] == "verify-full"
    assert env["STREAMFLOW_PG_PASSWORD"] == "s3cret"


def test_repo_config_takes_the_connection_from_the_url_not_the_environment():
    url = "postgresql://app:s3cret@db.example:6543/prod?sslmode=verify-full"
    before = {name: os.environ.get(name) for name in feast_env(url)}
    config = repo_config(url)
    assert {name: os.environ.get(name) for name in feast_env(url)} == before  # none exported
    online, offline = config.online_store, config.offline_store
    assert (online.host, online.port, online.database) == ("db.example", 6543, "prod")
    assert (offline.user, offline.password, offline.sslmode) == ("app", "s3cret", "verify-full")
    connect = config.registry.sqlalchemy_config_kwargs["connect_args"]
    assert (connect["host"], connect["dbname"]) == ("db.example", "prod")
    assert config.repo_path == FEATURE_REPO_DIR


def test_expand_variables_fills_known_names_and_leaves_the_others():
    text = "a: ${KNOWN}\nb: $KNOWN\nc: ${OTHER}"
    assert expand_variables(text, {"KNOWN": "x"}) == "a: x\nb: x\nc: ${OTHER}"


def test_code_version_follows_the_definition_files(tmp_path):
    repo = tmp_path / "feature_repo"
    shutil.copytree(FEATURE_REPO_DIR, repo, ignore=shutil.ignore_patterns("__pycache__"))
    original = repo_code_version(repo)
    assert original == repo_code_version(FEATURE_REPO_DIR)
    (repo / "notes.txt").write_text("not a definition")
    assert repo_code_version(repo) == original
    views = repo / "feature_views.py"
    views.write_text(views.read_text().replace("days=27", "days=20"))
    assert repo_code_version(repo) != original


def test_entity_key_prefix_is_feasts_v3_serialization():
    from feast.infra.key_encoding_utils import serialize_entity_key
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    key = EntityKey(join_keys=["user_id"], entity_values=[Value(string_val="u0000042")])
    serialized = serialize_entity_key(key, entity_key_serialization_version=ENTITY_KEY_VERSION)
    prefix = entity_key_prefix("user_id")
    assert serialized == prefix + len(b"u0000042").to_bytes(4, "little") + b"u0000042"


def test_feature_store_yaml_asks_feast_for_the_key_format_the_sql_builds():
    config = yaml.safe_load((FEATURE_REPO_DIR / "feature_store.yaml").read_text())
    assert config["entity_key_serialization_version"] == ENTITY_KEY_VERSION
    check_entity_key_version(config["entity_key_serialization_version"], "feature_store.yaml")


def test_another_key_format_stops_the_online_paths_with_the_file_and_the_fix(tmp_path):
    from feast import FeatureStore, RepoConfig

    from streamflow_dagster.features.specs import online_views, service_views

    config = RepoConfig(
        project="keys",
        provider="local",
        registry=str(tmp_path / "registry.db"),
        online_store={"type": "sqlite", "path": str(tmp_path / "online.db")},
        entity_key_serialization_version=ENTITY_KEY_VERSION + 1,
        repo_path=tmp_path,
    )
    store = FeatureStore(config=config, repo_path=str(tmp_path))
    expected = (
        f"feature_store.yaml: entity_key_serialization_version is {ENTITY_KEY_VERSION + 1}, "
        f".*Set entity_key_serialization_version: {ENTITY_KEY_VERSION}"
    )
    with pytest.raises(ValueError, match=expected):
        online_views(store)  # the online write's entry
    with pytest.raises(ValueError, match=expected):
        service_views(store, "churn_v1")  # training's and serving's entry
