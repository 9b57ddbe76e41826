"""feature_repo/ defines exactly DESIGN.md's features (churn_v1) and the challenger churn_v2,
and its config holds no connection detail."""

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
# churn_v2 adds the landing's other columns and three derived features (one view).
CHALLENGER_FEATURES = {
    "customer_profile_fv": [
        ("contract_type", "String"),
        ("add_on_security", "Bool"),
        ("add_on_backup", "Bool"),
        ("add_on_device_protect", "Bool"),
        ("add_on_support", "Bool"),
        ("user_is_senior", "Bool"),
        ("has_family", "Bool"),
        ("has_dependents", "Bool"),
        ("total_paid", "Float64"),
        ("add_on_count", "Int64"),
        ("paid_per_month_active", "Float64"),
        ("fee_above_average", "Float64"),
    ]
}


@pytest.fixture(scope="module")
def repo():
    from feast.repo_operations import parse_repo

    with _inside_repo(FEATURE_REPO_DIR):
        return parse_repo(FEATURE_REPO_DIR)


def test_four_views_with_the_14_design_features_and_the_challenger_view(repo):
    views = {v.name: [(f.name, str(f.dtype)) for f in v.features] for v in repo.feature_views}
    assert views == {**DESIGN_FEATURES, **CHALLENGER_FEATURES}
    assert sum(len(views[name]) for name in DESIGN_FEATURES) == 14
    assert all(v.entities == ["user"] and v.online for v in repo.feature_views)
    entities = [(e.name, e.join_key) for e in repo.entities if not e.name.startswith("__")]
    assert entities == [("user", "user_id")]


def test_sources_read_the_dbt_marts_with_as_of_as_event_time(repo):
    for view in repo.feature_views:
        source = view.batch_source
        assert source.timestamp_field == "as_of"
        assert source.get_table_query_string() == f"marts.{source.tags['dbt_model']}"


def test_the_churn_service_serves_every_feature_of_the_four_views(repo):
    services = {s.name: s for s in repo.feature_services}
    assert sorted(services) == ["churn_v1", "churn_v2"]
    served = {
        p.name: [f.name for f in p.features] for p in services["churn_v1"].feature_view_projections
    }
    assert served == {view: [n for n, _ in fields] for view, fields in DESIGN_FEATURES.items()}


def test_the_challenger_service_is_churn_v1_then_the_customer_profile(repo):
    """churn_v2 holds churn_v1's 14 features first, in order, so a v1 model can be scored on
    any v2 training set or holdout, and adds the customer profile's 12."""
    service = next(s for s in repo.feature_services if s.name == "churn_v2")
    served = [(p.name, f.name) for p in service.feature_view_projections for f in p.features]
    every = {**DESIGN_FEATURES, **CHALLENGER_FEATURES}
    assert served == [(view, name) for view, fields in every.items() for name, _ in fields]
    assert len(served) == 26


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
