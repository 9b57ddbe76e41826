"""The champion/challenger decision as a pure function: every case it must get right."""

from __future__ import annotations

import pytest

from streamflow_dagster.ml.promotion import (
    MIN_AUC_GAIN,
    NO_CHAMPION,
    Action,
    Contender,
    decide,
    decide_without_scores,
)


def contender(version: int, auc: float | None = None, **facts) -> Contender:
    return Contender(version=version, as_of=f"2024-0{version}-28", auc=auc, **facts)


def test_better_challenger_is_promoted():
    decision = decide(contender(2, 0.86), contender(1, 0.84))
    assert decision.action is Action.PROMOTE
    assert decision.auc_gain == pytest.approx(0.02)
    assert "0.8600 vs 0.8400" in decision.reason


def test_worse_challenger_is_rejected():
    decision = decide(contender(2, 0.83), contender(1, 0.84))
    assert decision.action is Action.REJECT
    assert "does not beat the champion" in decision.reason


def test_equal_challenger_keeps_the_champion():
    assert decide(contender(2, 0.84), contender(1, 0.84)).action is Action.REJECT


def test_gain_below_the_margin_keeps_the_champion_and_at_the_margin_promotes():
    below = decide(contender(2, 0.84 + MIN_AUC_GAIN / 2), contender(1, 0.84))
    at = decide(contender(2, 0.75), contender(1, 0.75 - MIN_AUC_GAIN))
    assert below.action is Action.REJECT
    assert at.action is Action.PROMOTE


def test_first_valid_model_is_promoted_without_a_champion():
    decision = decide(contender(1, 0.8), None)
    assert decision.action is Action.PROMOTE
    assert "no champion yet" in decision.reason


@pytest.mark.parametrize("champion", [None, contender(1, 0.5)])
def test_failed_checks_are_never_promoted(champion):
    challenger = contender(2, 0.99, checks_passed=False, failed_checks=("auc_above_floor",))
    decision = decide(challenger, champion)
    assert decision.action is Action.REJECT
    assert "auc_above_floor" in decision.reason


def test_checks_that_never_completed_count_as_failed():
    decision = decide(contender(2, 0.9, checks_passed=False), None)
    assert decision.action is Action.REJECT
    assert "checks did not complete" in decision.reason


def test_rerun_against_the_same_champion_changes_nothing():
    challenger = contender(2, 0.83, decided_against="1")
    assert decide(challenger, contender(1, 0.84)).action is Action.UNCHANGED
    # ... whatever the scores would say now, and without scores at all.
    assert decide_without_scores(contender(2, decided_against="1"), contender(1)).action is (
        Action.UNCHANGED
    )


def test_rerun_without_a_champion_changes_nothing():
    challenger = contender(2, 0.9, checks_passed=False, decided_against=NO_CHAMPION)
    assert decide(challenger, None).action is Action.UNCHANGED


def test_a_new_champion_means_a_new_decision():
    challenger = contender(3, 0.9, decided_against="1")
    assert decide(challenger, contender(2, 0.8)).action is Action.PROMOTE


def test_champion_itself_is_unchanged():
    decision = decide(contender(2, 0.9), contender(2, 0.9))
    assert decision.action is Action.UNCHANGED
    assert "already production" in decision.reason


def test_nothing_registered_changes_nothing():
    assert decide(None, None).action is Action.UNCHANGED


def test_a_version_taken_out_by_hand_is_not_promoted_again_automatically():
    decision = decide(contender(2, 0.95, demoted_by_hand=True), contender(1, 0.8))
    assert decision.action is Action.REJECT
    assert "streamflow model promote 2" in decision.reason


def test_scores_are_needed_only_when_they_decide():
    assert decide_without_scores(contender(2), contender(1)) is None
    with pytest.raises(ValueError, match="need an AUC"):
        decide(contender(2), contender(1))


def test_same_facts_same_decision():
    facts = (contender(2, 0.851), contender(1, 0.84))
    assert decide(*facts) == decide(*facts)


def test_a_version_whose_run_never_finished_is_never_promoted():
    unfinished = contender(2, 0.99, unfinished_run="process 123 that ran it is gone")
    for champion in (None, contender(1, 0.5)):
        decision = decide(unfinished, champion)
        assert decision.action is Action.REJECT
        assert "did not finish (process 123 that ran it is gone)" in decision.reason


def test_a_version_that_does_not_load_is_never_promoted():
    decision = decide(contender(2, load_error="BadZipFile: File is not a zip file"), None)
    assert decision.action is Action.REJECT
    assert "cannot be loaded (BadZipFile" in decision.reason
