"""The demo landing generator: deterministic, contract-shaped, learnable, with one drift month."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score
from threadpoolctl import threadpool_limits

from streamflow_dagster.landing.contract import (
    CONTRACT_TYPES,
    LANDING_TABLES,
    NET_SERVICES,
    Kind,
)
from streamflow_dagster.landing.demo_data import SHIFTED_MONTH_INDEX, as_of_dates, generate_landing
from tests.integration.ml.support import FEATURES

# DESIGN.md "Features": the 14 model features (net_service enters one-hot encoded).
NUMERIC_FEATURES = [name for name in FEATURES if name != "net_service"]
# Usual PSI reading: under 0.1 stable, over 0.25 a shift worth acting on.
PSI_STABLE, PSI_SHIFTED = 0.1, 0.25


@pytest.fixture(scope="module")
def small_landing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("small")
    generate_landing(out, users=2000, months=3, seed=42)
    return out


@pytest.fixture(scope="module")
def drift_landing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("drift")
    generate_landing(out, users=3000, months=8, seed=7)
    return out


def month_dirs(landing: Path) -> list[Path]:
    return sorted(path for path in landing.iterdir() if path.is_dir())


def read_text(month: Path, file: str) -> pd.DataFrame:
    """A landing file exactly as written: every cell a string, blanks kept as ''."""
    return pd.read_csv(month / file, dtype=str, keep_default_na=False)


def read_month(month: Path) -> pd.DataFrame:
    """All six files of a month joined on user_id, with parsed types."""
    tables = [pd.read_csv(month / table.file) for table in LANDING_TABLES]
    joined = tables[0]
    for table in tables[1:]:
        joined = joined.merge(table, on="user_id", validate="one_to_one")
    return joined


def feature_matrix(month: pd.DataFrame) -> pd.DataFrame:
    features = month[NUMERIC_FEATURES].astype(float)
    for service in NET_SERVICES:
        features[f"net_service_{service}"] = (month["net_service"] == service).astype(float)
    return features


def psi(expected: np.ndarray, actual: np.ndarray, bins: int = 10) -> float:
    """Population stability index over the expected sample's quantile bins."""
    edges = np.unique(np.quantile(expected, np.linspace(0, 1, bins + 1))[1:-1])
    shares = [
        np.bincount(np.searchsorted(edges, sample, side="right"), minlength=len(edges) + 1)
        / len(sample)
        for sample in (expected, actual)
    ]
    expected_share, actual_share = (np.clip(share, 1e-4, None) for share in shares)
    return float(np.sum((actual_share - expected_share) * np.log(actual_share / expected_share)))


def all_bytes(landing: Path) -> dict[str, bytes]:
    return {str(p.relative_to(landing)): p.read_bytes() for p in sorted(landing.rglob("*.csv"))}


def test_as_of_dates_are_month_ends() -> None:
    assert as_of_dates("2024-01-31", 3) == [date(2024, 1, 31), date(2024, 2, 29), date(2024, 3, 31)]
    assert as_of_dates("2024-11-30", 3)[-1] == date(2025, 1, 31)
    assert as_of_dates("2024-01-31", 12)[SHIFTED_MONTH_INDEX] == date(2024, 7, 31)
    with pytest.raises(ValueError, match="last day of a month"):
        as_of_dates("2024-01-15", 2)


def test_same_seed_writes_byte_identical_files(small_landing: Path, tmp_path: Path) -> None:
    generate_landing(tmp_path, users=2000, months=3, seed=42)
    assert all_bytes(tmp_path) == all_bytes(small_landing)


def test_another_seed_writes_different_files(small_landing: Path, tmp_path: Path) -> None:
    generate_landing(tmp_path, users=2000, months=3, seed=43)
    other, reference = all_bytes(tmp_path), all_bytes(small_landing)
    assert other.keys() == reference.keys()
    assert all(other[name] != reference[name] for name in reference)


def test_summaries_and_progress_report_every_month(tmp_path: Path) -> None:
    lines: list[str] = []
    summaries = generate_landing(tmp_path, users=1000, months=8, seed=1, progress=lines.append)
    assert [s.as_of for s in summaries] == as_of_dates("2024-01-31", 8)
    assert len(lines) == 8
    assert [s.shifted for s in summaries] == [i == SHIFTED_MONTH_INDEX for i in range(8)]
    assert all(900 <= s.users <= 1100 and s.new_users > 0 for s in summaries)
    assert all(0.04 <= s.churn_rate <= 0.10 for s in summaries)


def test_files_and_columns_follow_the_contract(small_landing: Path) -> None:
    months = month_dirs(small_landing)
    assert [m.name for m in months] == [d.isoformat() for d in as_of_dates("2024-01-31", 3)]
    for month in months:
        user_ids = None
        for table in LANDING_TABLES:
            raw = (month / table.file).read_bytes()
            assert b"\r" not in raw and raw.endswith(b"\n")
            assert raw.decode("utf-8").split("\n", 1)[0] == ",".join(table.column_names)
            frame = read_text(month, table.file)
            assert frame["user_id"].str.fullmatch(r"u\d{7}").all()
            assert frame["user_id"].is_unique
            # Every user of the month is in every file, in the same order.
            if user_ids is None:
                user_ids = frame["user_id"].tolist()
            assert frame["user_id"].tolist() == user_ids
            for column in table.columns:
                assert_cells_have_kind(frame[column.name], column.kind, column.nullable)
                if column.vocabulary:  # the canonical spelling, as the platform serves it
                    assert set(frame[column.name]) <= set(column.vocabulary.values)


def assert_cells_have_kind(cells: pd.Series, kind: Kind, nullable: bool) -> None:
    present = cells[cells != ""] if nullable else cells
    patterns = {
        Kind.BOOL: r"true|false",
        Kind.DATE: r"\d{4}-\d{2}-\d{2}",
        Kind.INT: r"\d+",
        Kind.NUM: r"\d+\.\d{1,2}",
        Kind.TEXT: r"[A-Za-z0-9_-]+( [a-z]+)?",
    }
    assert present.str.fullmatch(patterns[kind]).all(), (cells.name, present.head().tolist())


def test_categories_money_and_ticket_hours(small_landing: Path) -> None:
    month = month_dirs(small_landing)[0]
    subscriptions = read_text(month, "subscriptions.csv")
    assert set(subscriptions["contract_type"]) == set(CONTRACT_TYPES)
    assert set(subscriptions["net_service"]) == set(NET_SERVICES)
    assert set(read_text(month, "users.csv")["user_gender"]) == {"Female", "Male"}
    assert subscriptions["monthly_fee"].str.fullmatch(r"\d+\.\d\d").all()
    paid = subscriptions["total_paid"]
    assert paid[paid != ""].str.fullmatch(r"\d+\.\d\d").all()
    support = read_month(month)
    no_tickets = support["support_tickets_90d"] == 0
    assert (support.loc[no_tickets, "ticket_avg_resolution_hrs_90d"] == 0).all()
    assert (support.loc[~no_tickets, "ticket_avg_resolution_hrs_90d"] > 0).all()


def test_churned_users_leave_and_survivors_age(small_landing: Path) -> None:
    months = [read_month(m).set_index("user_id") for m in month_dirs(small_landing)]
    pairs = list(zip(months, months[1:], strict=False))
    assert len(pairs) == 2  # the fixture's 3 months: a loop over nothing would prove nothing
    for this, following in pairs:
        stayed = this.index[~this["churn_label"]]
        churned = this.index[this["churn_label"]]
        assert set(following.index) & set(this.index) == set(stayed)
        assert not set(following.index) & set(churned)
        ages = following.loc[stayed, "months_active"] - this.loc[stayed, "months_active"]
        assert (ages == 1).all()
        assert (following.loc[stayed, "signup_date"] == this.loc[stayed, "signup_date"]).all()


def test_new_users_signed_up_this_month_and_paid_nothing_yet(small_landing: Path) -> None:
    previous_ids: set[str] = set()
    months = month_dirs(small_landing)
    assert len(months) == 3
    for index, month in enumerate(months):
        subscriptions = read_text(month, "subscriptions.csv").set_index("user_id")
        users = read_text(month, "users.csv").set_index("user_id")
        new = subscriptions["months_active"] == "0"
        assert new.any()
        assert (subscriptions.loc[new, "total_paid"] == "").all()
        assert (subscriptions.loc[~new, "total_paid"] != "").all()
        assert users.loc[new, "signup_date"].str.startswith(month.name[:7]).all()
        if index > 0:
            assert set(subscriptions.index[new]) == set(subscriptions.index) - previous_ids
        previous_ids = set(subscriptions.index)


def test_gradient_boosting_learns_churn_but_not_perfectly(tmp_path: Path) -> None:
    generate_landing(tmp_path, users=4000, months=4, seed=11)
    months = [read_month(m) for m in month_dirs(tmp_path)]
    training, holdout = pd.concat(months[:3]), months[3]
    model = HistGradientBoostingClassifier(random_state=0)
    # One thread: on a busy machine OpenMP's spinning threads make this fit 50x slower.
    with threadpool_limits(limits=1):
        model.fit(feature_matrix(training), training["churn_label"])
    scores = model.predict_proba(feature_matrix(holdout))[:, 1]
    auc = roc_auc_score(holdout["churn_label"], scores)
    assert 0.80 <= auc <= 0.97, auc


def test_drift_shows_in_the_shifted_month_only(drift_landing: Path) -> None:
    months = [read_month(m) for m in month_dirs(drift_landing)]
    before, shifted = months[SHIFTED_MONTH_INDEX - 1], months[SHIFTED_MONTH_INDEX]
    assert psi(before["watch_hours_30d"], shifted["watch_hours_30d"]) > PSI_SHIFTED
    assert shifted["watch_hours_30d"].median() < 0.8 * before["watch_hours_30d"].median()
    assert shifted["rebuffer_events_7d"].mean() > 1.6 * before["rebuffer_events_7d"].mean()
    for index in range(1, len(months)):
        if index == SHIFTED_MONTH_INDEX:
            continue
        for feature in NUMERIC_FEATURES:
            expected = months[index - 1][feature].astype(float).to_numpy()
            actual = months[index][feature].astype(float).to_numpy()
            assert psi(expected, actual) < PSI_STABLE, (index, feature)
