"""The model card's figures and text: intervals, segments, the decision section, the links."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score, roc_auc_score

from streamflow_dagster.ml.card_stats import (
    Interval,
    f1_interval,
    metric_intervals,
    segment_metrics,
    wilson,
)
from streamflow_dagster.ml.model_card import (
    DECISION_HEADING,
    PENDING_DECISION,
    CardFacts,
    card_markdown,
    decision_markdown,
    description_of,
    with_decision,
)
from streamflow_dagster.ml.report_links import (
    dagster_run_url,
    mlflow_artifact_url,
    mlflow_run_url,
    mlflow_version_url,
)


def test_wilson_matches_the_published_intervals():
    # Wilson (1927) / Newcombe (1998), 95%: 0 of 10 -> [0, 0.2775]; 5 of 10 -> [0.2366, 0.7634].
    assert wilson(0, 10).high == pytest.approx(0.2775, abs=1e-4)
    five = wilson(5, 10)
    assert (five.low, five.high) == pytest.approx((0.2366, 0.7634), abs=1e-4)


def scored_holdout(rows: int = 2000, seed: int = 0):
    rng = np.random.default_rng(seed)
    labels = rng.random(rows) < 0.1
    probability = np.clip(0.1 + 0.25 * labels + rng.normal(0, 0.15, rows), 0, 1)
    return labels, probability


def test_metric_intervals_hold_the_point_estimates():
    labels, probability = scored_holdout()
    intervals = metric_intervals(labels, probability, threshold=0.3, seed=1)
    predicted = probability >= 0.3
    assert intervals["auc"].value == pytest.approx(roc_auc_score(labels, probability))
    assert intervals["f1"].value == pytest.approx(f1_score(labels, predicted))
    assert intervals["churn_rate"].value == pytest.approx(labels.mean())
    for name, interval in intervals.items():
        assert interval.low < interval.value < interval.high, name
    # 2,000 rows, ~200 churners: the AUC interval is a few hundredths wide, not a tenth.
    assert 0.01 < intervals["auc"].high - intervals["auc"].low < 0.1


def test_f1_bootstrap_is_seeded():
    labels, probability = scored_holdout()
    first = f1_interval(labels, probability >= 0.3, seed=5)
    assert first == f1_interval(labels, probability >= 0.3, seed=5)


def test_f1_bootstrap_drawn_in_chunks_is_the_one_draw_bootstrap():
    labels, probability = scored_holdout(rows=1999)
    whole = f1_interval(labels, probability >= 0.3, seed=5, chunk_draws=10**9)
    # 3 resamples per chunk, the last chunk short: same resamples, same interval.
    assert whole == f1_interval(labels, probability >= 0.3, seed=5, chunk_draws=3 * 1999 + 7)
    assert whole == f1_interval(labels, probability >= 0.3, seed=5, chunk_draws=1)


def test_segments_report_churn_rate_and_say_when_n_is_too_small():
    labels, probability = scored_holdout(rows=1000)
    contract = np.where(np.arange(1000) < 950, "Month-to-month", "Two year")
    labels[950:] = False
    labels[950:953] = True  # 3 churners among the 50 two-year users
    attributes = pd.DataFrame(
        {"contract_type": contract, "user_is_senior": [True, False] * 500}, dtype=object
    )
    attributes.loc[0, "user_is_senior"] = None
    rows = segment_metrics(
        labels,
        probability,
        attributes,
        columns={"contract_type": "Contract type", "user_is_senior": "Senior citizen"},
    )
    by_value = {(r.attribute, r.value): r for r in rows}
    two_year = by_value[("contract_type", "Two year")]
    assert (two_year.rows, two_year.churners, two_year.auc) == (50, 3, None)
    assert two_year.note == "n too small (3 churned, 47 stayed)"
    monthly = by_value[("contract_type", "Month-to-month")]
    assert monthly.churn_rate == pytest.approx(labels[:950].mean())
    assert monthly.auc.value == pytest.approx(roc_auc_score(labels[:950], probability[:950]))
    assert {r.value for r in rows if r.attribute == "user_is_senior"} == {"yes", "no", "unknown"}


def facts(**changes) -> CardFacts:
    base = dict(
        as_of="2024-03-31",
        feature_service="churn_v1",
        features=["net_service", "monthly_fee"],
        algorithm="hist_gradient_boosting",
        threshold=0.21,
        split_rows={"train": 600, "validation": 200, "holdout": 200},
        churn_rate=0.071,
        metrics={"auc": Interval(0.8123, 0.77, 0.85, "DeLong")},
        segments=None,
        checks={"auc_floor": True},
        dataset="`training_set 2024-03-31` (digest abc, 1,000 rows)",
        links={"Dagster run": "http://dagster/runs/r1"},
    )
    return CardFacts(**{**base, **changes})


def test_card_has_its_sections_and_the_decision_replaces_the_pending_one():
    card = card_markdown(facts())
    for heading in (
        "## Intended use",
        "## Training window",
        "## Data",
        "## Metrics (holdout, 95% interval)",
        "## Metrics per segment (holdout)",
        DECISION_HEADING,
        "## Limitations",
        "## Links",
    ):
        assert heading in card
    assert "| AUC (ranking) | 0.812 [0.770, 0.850] | DeLong |" in card
    assert "1,000 labelled users, churn rate 7.1%" in card
    assert PENDING_DECISION in card
    decided = with_decision(
        card,
        decision_markdown(
            "promote",
            "beats the champion",
            challenger_auc=0.81,
            champion="v1 (2024-02-29)",
            champion_auc=0.79,
            decided_at="2024-04-30T00:00:00+00:00",
            dagster_run_url="http://dagster/runs/r2",
        ),
    )
    assert PENDING_DECISION not in decided and "**promote**" in decided
    assert "champion v1 (2024-02-29): 0.7900" in decided
    assert decided.index("**promote**") < decided.index("## Limitations")  # the same place
    with pytest.raises(ValueError, match="Promotion decision"):
        with_decision("# no card", "x")


def test_a_card_over_mlflows_limit_drops_the_segment_table_from_the_description():
    card = card_markdown(facts()).replace(
        "Not measured: no segment attributes were given for this month.", "| x |\n" * 1500
    )
    description = description_of(card)
    assert len(description) <= 5000 and "model_card.md" in description
    assert "## Limitations" in description


def test_links_are_http_pages_of_the_two_uis():
    assert dagster_run_url("http://d:3000/", "abc") == "http://d:3000/runs/abc"
    assert mlflow_run_url("http://m:5000", "3", "r9") == (
        "http://m:5000/#/experiments/3/runs/r9?workflowType=machine_learning"
    )
    assert mlflow_artifact_url("http://m:5000", "3", "r9", "feature_drift/2024-07-31.html") == (
        "http://m:5000/#/experiments/3/runs/r9/artifacts/feature_drift/2024-07-31.html"
        "?workflowType=machine_learning"
    )
    assert mlflow_version_url("http://m:5000", 7).startswith(
        "http://m:5000/#/models/streamflow_churn/versions/7?"
    )
