"""The decision chain as a pure function: the champion as of each month, from months <= M."""

from __future__ import annotations

import random

import pytest

from streamflow_dagster.ml.chain import (
    PENDING,
    ChainMonth,
    basis,
    champion_as_of,
    newest_decided,
    walk,
)
from streamflow_dagster.ml.promotion import Action, Contender, decide

# Holdout AUC of each month's model: February's beats January's, March's does not beat February's.
AUC = {1: 0.80, 2: 0.85, 3: 0.84}
MONTHS = ["2024-01-31", "2024-02-29", "2024-03-31"]


def month(version: int, **kw) -> ChainMonth:
    return ChainMonth(as_of=MONTHS[version - 1], version=version, settled=True, facts="ok", **kw)


class Decider:
    """Scores by the AUC table and counts the decisions it was asked to make."""

    def __init__(self):
        self.calls: list[tuple[int, int | None]] = []

    def __call__(self, m: ChainMonth, champion: int | None):
        self.calls.append((m.version, champion))
        challenger = Contender(m.version, m.as_of, AUC[m.version])
        holder = Contender(champion, "", AUC[champion]) if champion else None
        return decide(challenger, holder, 0.01)


def test_each_month_challenges_the_champion_before_it():
    steps = walk([month(1), month(2), month(3)], Decider())
    assert [(s.champion_before, s.action, s.champion_after) for s in steps] == [
        (None, Action.PROMOTE, 1),
        (1, Action.PROMOTE, 2),
        (2, Action.REJECT, 2),
    ]
    assert [champion_as_of(steps, m) for m in MONTHS] == [1, 2, 2]
    assert champion_as_of(steps, "2023-12-31") is None
    assert champion_as_of(steps, "2024-02-15") == 1  # a month without a model keeps it


@pytest.mark.parametrize("seed", range(5))
def test_any_order_of_the_months_gives_the_same_chain(seed):
    months = [month(1), month(2), month(3)]
    random.Random(seed).shuffle(months)
    steps = walk(months, Decider())
    assert [s.as_of for s in steps] == MONTHS
    assert [s.champion_after for s in steps] == [1, 2, 2]


def test_a_recorded_decision_is_reused_while_its_basis_holds():
    first = walk([month(1), month(2)], Decider())
    recorded = [
        month(s.version, recorded_basis=s.basis, recorded_action=str(s.action)) for s in first
    ]
    decider = Decider()
    again = walk(recorded, decider)
    assert decider.calls == [] and [s.champion_after for s in again] == [1, 2]


def test_an_earlier_month_trained_later_re_decides_the_months_after_it():
    # February was decided alone (no champion before it); then January's model arrived.
    alone = walk([month(2)], Decider())[0]
    assert alone.basis == basis(None, "ok")
    recorded = month(2, recorded_basis=alone.basis, recorded_action=str(alone.action))
    decider = Decider()
    steps = walk([month(1), recorded], decider)
    assert decider.calls == [(1, None), (2, 1)]
    assert [s.champion_after for s in steps] == [1, 2]


def test_a_pending_month_keeps_the_champion_and_is_not_decided():
    decider = Decider()
    pending = ChainMonth(MONTHS[1], 2, settled=False, facts="checks=pending")
    steps = walk([month(1), pending, month(3)], decider)
    assert [s.action for s in steps] == [Action.PROMOTE, PENDING, Action.PROMOTE]
    assert decider.calls == [(1, None), (3, 1)]
    assert newest_decided(steps).as_of == MONTHS[2]
    assert newest_decided([steps[1]]) is None


def test_a_decision_that_neither_promotes_nor_rejects_is_refused():
    def unchanged(m, champion):
        return decide(None, None)

    with pytest.raises(ValueError, match="must promote or reject"):
        walk([month(1)], unchanged)
