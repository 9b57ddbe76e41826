"""The champion/challenger decision: a pure function of facts recorded in the registry.

Challenger: the newest month's registered version. Champion: the version holding alias
`production`. Both are scored on the challenger's holdout (rows neither model was fit on);
the challenger replaces the champion only if its checks passed and its AUC is higher by at
least MIN_AUC_GAIN. The outcome depends only on the facts, so re-running with nothing new
gives the same answer, and a decision already recorded against the same champion is not
made (or written) again.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

# Two models scored on the same ~1,400-user holdout (~100 churners) differ in AUC by a
# standard deviation of about 0.01 from sampling alone (paired bootstrap of consecutive demo
# months' models; bench/bench_models.py prints it). Requiring a gain of one such deviation
# keeps Production from flapping between equivalent models (an equal challenger clears it
# by luck ~16% of the time instead of ~50%), while a real improvement, such as a model that
# has seen a drifted month, clears it easily. An equal score keeps the champion.
MIN_AUC_GAIN = 0.01
NO_CHAMPION = "none"  # recorded as the champion of a decision made when there was none


class Action(StrEnum):
    PROMOTE = "promote"  # move `production` to the challenger
    REJECT = "reject"  # the challenger stays out; recorded on it
    UNCHANGED = "unchanged"  # nothing new: nothing is moved or written


@dataclass(frozen=True)
class Contender:
    """What the registry knows about one version, plus its AUC on the challenger's holdout."""

    version: int
    as_of: str
    auc: float | None = None
    checks_passed: bool = True
    failed_checks: tuple[str, ...] = ()
    demoted_by_hand: bool = False  # taken out of production by `streamflow model ...`
    decided_against: str | None = None  # champion version of its last recorded decision
    unfinished_run: str | None = None  # why the MLflow run that registered it never finished
    load_error: str | None = None  # why its model files do not load (None: they load)


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: str
    challenger: Contender | None
    champion: Contender | None
    min_auc_gain: float

    @property
    def auc_gain(self) -> float | None:
        if self.challenger is None or self.champion is None:
            return None
        if self.challenger.auc is None or self.champion.auc is None:
            return None
        return self.challenger.auc - self.champion.auc


def decide(
    challenger: Contender | None, champion: Contender | None, min_auc_gain: float = MIN_AUC_GAIN
) -> Decision:
    """Promote, reject, or leave everything as it is (see the module docstring)."""
    early = decide_without_scores(challenger, champion, min_auc_gain)
    if early is not None:
        return early
    if challenger.auc is None or champion.auc is None:
        raise ValueError("both contenders need an AUC on the challenger's holdout to compare")
    gain = challenger.auc - champion.auc
    scores = (
        f"AUC {challenger.auc:.4f} vs {champion.auc:.4f} for {_label(champion)} on "
        f"{challenger.as_of}'s holdout"
    )
    name = _label(challenger)
    if gain >= min_auc_gain:
        reason = f"{name} beats the champion: {scores} (+{gain:.4f})"
        return Decision(Action.PROMOTE, reason, challenger, champion, min_auc_gain)
    reason = f"{name} does not beat the champion by {min_auc_gain}: {scores} ({gain:+.4f})"
    return Decision(Action.REJECT, reason, challenger, champion, min_auc_gain)


def decide_without_scores(
    challenger: Contender | None, champion: Contender | None, min_auc_gain: float = MIN_AUC_GAIN
) -> Decision | None:
    """The decision when it does not depend on AUCs; None when the scores must decide."""

    def outcome(action: Action, reason: str) -> Decision:
        return Decision(action, reason, challenger, champion, min_auc_gain)

    if challenger is None:
        return outcome(Action.UNCHANGED, "no registered model yet: nothing to promote")
    name = _label(challenger)
    if champion is not None and champion.version == challenger.version:
        return outcome(Action.UNCHANGED, f"{name} is already production")
    champion_key = str(champion.version) if champion is not None else NO_CHAMPION
    if challenger.decided_against == champion_key:
        note = " and then taken out of production by hand" if challenger.demoted_by_hand else ""
        return outcome(
            Action.UNCHANGED,
            f"{name} was already evaluated against the same champion "
            f"({_label(champion)}){note}; nothing new to decide",
        )
    if challenger.unfinished_run:
        return outcome(
            Action.REJECT,
            f"{name} was registered by an MLflow run that did not finish "
            f"({challenger.unfinished_run}): never promoted; re-run its month",
        )
    if challenger.load_error:
        return outcome(
            Action.REJECT,
            f"{name} cannot be loaded ({challenger.load_error}): never promoted; re-run its month",
        )
    if not challenger.checks_passed:
        failed = ", ".join(challenger.failed_checks) or "checks did not complete"
        return outcome(Action.REJECT, f"{name} failed its checks ({failed}): never promoted")
    if challenger.demoted_by_hand:
        return outcome(
            Action.REJECT,
            f"{name} was taken out of production by hand; `streamflow model promote "
            f"{challenger.version}` puts it back",
        )
    if champion is None:
        return outcome(Action.PROMOTE, f"{name} passed its checks and there is no champion yet")
    return None


def _label(contender: Contender | None) -> str:
    return "no champion" if contender is None else f"v{contender.version} ({contender.as_of})"
