"""The promotion decision chain: the champion as of month M, from the models of months <= M.

The rule (README, "Models"): walk the months in AS_OF order, starting with no champion. A
month with a model (the newest registered version of that AS_OF) challenges the champion
before it, scored on its own holdout (`decide`, ml/promotion.py); the winner is the champion
as of that month. A month without a model (labels not landed, too few labels), or whose model
is not settled yet (checks still pending), keeps the champion before it. Month M's decision
and the model that scores month M therefore depend only on the models of months <= M, never
on the order or the concurrency in which months ran, nor on where alias `production` is now.

Each decision is recorded on its month's version with its basis: the champion it faced and the
version's own facts it read. A recorded decision is reused while its basis holds and re-made
when it changes (an earlier month trained later or re-run, a version taken out by hand), so
walking the chain again costs nothing when nothing changed. Pure: the caller supplies the
months and the function that makes a decision (ml/decision_chain.py, on the registry).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from .promotion import NO_CHAMPION, Action, Decision

PENDING = "pending"  # a model whose checks are still running: not part of the chain yet


@dataclass(frozen=True)
class ChainMonth:
    """A month with a registered model, as the chain reads it."""

    as_of: str
    version: int  # the newest version of the month (a re-run month registers a new one)
    settled: bool  # its checks have an outcome (or its run is known to have died)
    facts: str  # the version's own facts a decision reads (checks, taken out by hand, ...)
    recorded_basis: str | None = None
    recorded_action: str | None = None


@dataclass(frozen=True)
class ChainStep:
    as_of: str
    version: int
    champion_before: int | None
    action: str  # Action.PROMOTE, Action.REJECT or PENDING
    basis: str
    decision: Decision | None  # None: the recorded decision was reused (or pending)

    @property
    def champion_after(self) -> int | None:
        return self.version if self.action == Action.PROMOTE else self.champion_before


def basis(champion_before: int | None, facts: str) -> str:
    """What a month's decision depends on; a recorded decision holds while this is unchanged."""
    champion = NO_CHAMPION if champion_before is None else str(champion_before)
    return f"champion={champion};{facts}"


def walk(
    months: Iterable[ChainMonth], decide_at: Callable[[ChainMonth, int | None], Decision]
) -> list[ChainStep]:
    """Every month's step in AS_OF order; `decide_at` is called only where no decision holds."""
    champion: int | None = None
    steps = []
    for month in sorted(months, key=lambda m: m.as_of):
        key = basis(champion, month.facts)
        if not month.settled:
            steps.append(ChainStep(month.as_of, month.version, champion, PENDING, key, None))
            continue
        reusable = month.recorded_action in (Action.PROMOTE, Action.REJECT)
        if reusable and month.recorded_basis == key:
            action, decision = Action(month.recorded_action), None
        else:
            decision = decide_at(month, champion)
            if decision.action not in (Action.PROMOTE, Action.REJECT):
                raise ValueError(
                    f"the chain's decision for {month.as_of} (v{month.version}) must promote or "
                    f"reject, not {decision.action}: {decision.reason}"
                )
            action = decision.action
        step = ChainStep(month.as_of, month.version, champion, action, key, decision)
        steps.append(step)
        champion = step.champion_after
    return steps


def champion_as_of(steps: list[ChainStep], as_of: str) -> int | None:
    """The champion after the decisions of months <= as_of (None: no model promoted yet)."""
    champion = None
    for step in steps:
        if step.as_of > as_of:
            break
        champion = step.champion_after
    return champion


def newest_decided(steps: list[ChainStep]) -> ChainStep | None:
    """The step of the newest month with a decision (a pending month has none yet)."""
    decided = [s for s in steps if s.action != PENDING]
    return decided[-1] if decided else None
