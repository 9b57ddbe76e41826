"""The month's choice between feature services: the promotion rule, on one holdout."""

from __future__ import annotations

import pytest

from streamflow_dagster.ml.promotion import MIN_AUC_GAIN
from streamflow_dagster.ml.services import ServiceResult, choose_service


def result(service: str, auc: float, *failed: str) -> ServiceResult:
    return ServiceResult(service, holdout_auc=auc, validation_auc=auc - 0.01, failed_checks=failed)


def test_the_challenger_service_wins_only_by_the_promotion_margin():
    clear = choose_service([result("churn_v1", 0.8355), result("churn_v2", 0.8467)])
    assert clear.service == "churn_v2"
    assert "+0.0112" in clear.reason and clear.comparison() == "churn_v1 0.8355, churn_v2 0.8467"

    narrow = choose_service([result("churn_v1", 0.840), result("churn_v2", 0.840 + 0.009)])
    assert narrow.service == "churn_v1"
    assert f"does not beat churn_v1 by {MIN_AUC_GAIN}" in narrow.reason

    exact = choose_service([result("churn_v1", 0.75), result("churn_v2", 0.75)], min_auc_gain=0.0)
    assert exact.service == "churn_v2"  # a gain of at least the margin (here 0) wins


def test_a_service_whose_model_fails_its_checks_is_never_chosen():
    failed = choose_service([result("churn_v1", 0.80), result("churn_v2", 0.95, "auc_above_floor")])
    assert failed.service == "churn_v1"
    assert "only service whose model passed" in failed.reason

    rescued = choose_service(
        [result("churn_v1", 0.65, "auc_above_floor"), result("churn_v2", 0.71)]
    )
    assert rescued.service == "churn_v2"
    assert "churn_v1 failed its checks (auc_above_floor)" in rescued.reason


def test_one_service_is_its_own_choice_and_none_is_an_error():
    assert choose_service([result("churn_v1", 0.8)]).service == "churn_v1"
    with pytest.raises(ValueError, match="no feature service was trained"):
        choose_service([])
