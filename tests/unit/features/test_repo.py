"""feature_repo/ defines exactly DESIGN.md's features, and its config holds no connection detail."""

from __future__ import annotations

import re
from datetime import date, timedelta

import pytest
import yaml

from streamflow_dagster.features.registry import _inside_repo
from streamflow_dagster.lib.as_of import month_end
from streamflow_dagster.platform.settings import FEATURE_REPO_DIR

DESIGN_FEATURES = {
    "subs_profile_fv": [
        ("net_service", "String"),
        ("paperless_billing", "Bool"),
        ("plan_stream_movies", "Bool"),
        ("plan_stream_tv", "Bool"),
        ("months_active", "Int64"),
        ("monthly_fee", "Float64"),
    ],
    "usage_agg_30d_fv": [
        ("rebuffer_events_7d", "Int64"),
        ("unique_devices_30d", "Int64"),
        ("watch_hours_30d", "Float64"),
        ("skips_7d", "Int64"),
        ("avg_session_mins_7d", "Float64"),
    ],
    "payments_agg_90d_fv": [("failed_payments_90d", "Int64")],
    "support_agg_90d_fv": [
        ("support_tickets_90d", "Int64"),
        ("ticket_avg_resolution_hrs_90d", "Float64"),
    ],
}


@pytest.fixture(scope="module")
def repo():
    from feast.repo_operations import parse_repo

    with _inside_repo(FEATURE_REPO_DIR):
        return parse_repo(FEATURE_REPO_DIR)


def test_four_views_with_the_14_design_features_and_types(repo):
    views = {v.name: [(f.name, str(f.dtype)) for f in v.features] for v in repo.feature_views}
    assert views == DESIGN_FEATURES
    assert sum(map(len, views.values())) == 14
    assert all(v.entities == ["user"] and v.online for v in repo.feature_views)
    entities = [(e.name, e.join_key) for e in repo.entities if not e.name.startswith("__")]
    assert entities == [("user", "user_id")]


def test_sources_read_the_dbt_marts_with_as_of_as_event_time(repo):
    for view in repo.feature_views:
        source = view.batch_source
        assert source.timestamp_field == "as_of"
        assert source.get_table_query_string() == f"marts.{source.tags['dbt_model']}"


def test_the_churn_service_serves_every_feature_of_the_four_views(repo):
    (service,) = repo.feature_services
    assert service.name == "churn_v1"
    served = {p.name: [f.name for f in p.features] for p in service.feature_view_projections}
    assert served == {view: [n for n, _ in fields] for view, fields in DESIGN_FEATURES.items()}


def test_ttl_keeps_a_month_from_seeing_the_previous_month(repo):
    """Positive (0 would mean forever) and shorter than any gap between two month ends."""
    ends = [month_end(date(year, month, 1)) for year in range(2020, 2031) for month in range(1, 13)]
    shortest_gap = min(later - earlier for earlier, later in zip(ends, ends[1:], strict=False))
    assert shortest_gap == timedelta(days=28)
    for view in repo.feature_views:
        assert timedelta(0) < view.ttl < shortest_gap


def test_feature_store_yaml_takes_every_connection_detail_from_the_environment():
    text = (FEATURE_REPO_DIR / "feature_store.yaml").read_text()
    config = yaml.safe_load(text)
    assert config["registry"]["registry_type"] == "sql"
    assert config["online_store"]["type"] == config["offline_store"]["type"] == "postgres"
    connect_args = config["registry"]["sqlalchemy_config_kwargs"]["connect_args"]
    for block in (config["online_store"], config["offline_store"], connect_args):
        for key in ("host", "port", "user", "password", "sslmode"):
            assert re.fullmatch(r"\$\{STREAMFLOW_PG_[A-Z]+\}", str(block[key])), (key, block)
    assert "postgres@" not in text and 'password: ""' not in text
