"""Moves of alias `production`: the automatic decision, a manual promote, a rollback.

Each move keeps `previous` on the version that held `production` just before it, and
records the decision (action, reason, both AUCs, champion, margin, time, run) as tags of
the version it concerns. One move at a time: callers hold `promotion_lock`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

import pandas as pd
import psycopg
from mlflow.entities.model_registry import ModelVersion
from mlflow.tracking import MlflowClient
from sklearn.metrics import roc_auc_score

from .dataset import LABEL, model_features, model_input
from .promotion import (
    MIN_AUC_GAIN,
    NO_CHAMPION,
    Action,
    Contender,
    Decision,
    decide,
    decide_without_scores,
)
from .registry import (
    DECIDED_AGAINST_TAG,
    DECISION_PREFIX,
    DEMOTED_BY_HAND_TAG,
    PREVIOUS_ALIAS,
    PRODUCTION_ALIAS,
    alias_version,
    contender,
    delete_tag,
    get_version,
    load_holdout,
    load_version,
    newest_month_version,
    set_alias,
    set_tags,
)
from .threads import openmp_limited

# Serialises alias moves across processes (two month runs finishing together, the CLI).
_PROMOTION_LOCK_ID = 7_310_201


@contextmanager
def promotion_lock(database_url: str) -> Iterator[None]:
    """Hold the platform-wide promotion lock (a PostgreSQL advisory lock) while inside."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("select pg_advisory_lock(%s)", (_PROMOTION_LOCK_ID,))
        try:
            yield
        finally:
            conn.execute("select pg_advisory_unlock(%s)", (_PROMOTION_LOCK_ID,))


@dataclass(frozen=True)
class MoveResult:
    decision: Decision
    production: int | None  # version holding `production` after the move
    previous: int | None
    recorded_at: str | None  # None: nothing was written (Action.UNCHANGED)


def holdout_auc(model, holdout: pd.DataFrame, features: list[str]) -> float:
    """AUC of `model` on holdout rows, fed exactly the model's own features."""
    missing = [f for f in features if f not in holdout.columns]
    if missing:
        raise ValueError(f"the holdout lacks feature(s) {missing} this model needs")
    with openmp_limited():
        probability = model.predict_proba(model_input(holdout, features))[:, 1]
    return float(roc_auc_score(holdout[LABEL].astype(bool), probability))


def score_contenders(
    client: MlflowClient, challenger: ModelVersion, champion: ModelVersion | None
) -> tuple[Contender, Contender | None]:
    """Both versions scored on the challenger's holdout."""
    holdout = load_holdout(client, challenger)
    scored = []
    for version in (challenger, champion):
        if version is None:
            scored.append(None)
            continue
        model = load_version(client, version.version)
        scored.append(contender(version, holdout_auc(model, holdout, model_features(model))))
    return scored[0], scored[1]


def decide_and_move(
    client: MlflowClient, run: str, min_auc_gain: float = MIN_AUC_GAIN
) -> MoveResult:
    """The automatic step: newest month's version vs `production`, then the move if any."""
    challenger_version = newest_month_version(client)
    champion_version = alias_version(client, PRODUCTION_ALIAS)
    if challenger_version is None:
        decision = decide(None, None, min_auc_gain)
    else:
        champion_facts = contender(champion_version) if champion_version else None
        early = decide_without_scores(contender(challenger_version), champion_facts, min_auc_gain)
        if early is not None and early.action is not Action.PROMOTE:
            decision = early  # no score can change it: nothing to load
        else:  # scored even without a champion, so the record has the challenger's AUC
            decision = decide(
                *score_contenders(client, challenger_version, champion_version), min_auc_gain
            )
    return apply(client, decision, run)


def apply(client: MlflowClient, decision: Decision, run: str) -> MoveResult:
    """Record the decision on the challenger and move the aliases if it says promote."""
    if decision.action is Action.UNCHANGED:
        return _result(client, decision, None)
    challenger = decision.challenger
    recorded_at = datetime.now(UTC).isoformat(timespec="seconds")
    set_tags(
        client, challenger.version, _decision_tags(decision, decision.action, run, recorded_at)
    )
    if decision.action is Action.PROMOTE:
        if decision.champion is not None:
            set_alias(client, PREVIOUS_ALIAS, decision.champion.version)
        set_alias(client, PRODUCTION_ALIAS, challenger.version)
    return _result(client, decision, recorded_at)


def promote_by_hand(
    client: MlflowClient, version: int, run: str, force: bool = False
) -> MoveResult:
    """`streamflow model promote VERSION`: move `production` there, recorded like any move."""
    target = get_version(client, version)
    current = alias_version(client, PRODUCTION_ALIAS)
    facts = contender(target)
    if current is not None and int(current.version) == facts.version:
        reason = f"v{version} is already production"
        decision = Decision(Action.UNCHANGED, reason, facts, contender(current), MIN_AUC_GAIN)
        return _result(client, decision, None)
    if not facts.checks_passed and not force:
        raise ValueError(
            f"v{version} did not pass its checks ({', '.join(facts.failed_checks) or 'pending'});"
            " pass --force to promote it anyway"
        )
    challenger, champion = _scores_if_possible(client, target, current)
    reason = f"manual promote of v{version} ({facts.as_of}) by {run}"
    decision = Decision(Action.PROMOTE, reason, challenger, champion, MIN_AUC_GAIN)
    return _move_by_hand(client, decision, current, run, action_name="manual_promote")


def rollback(client: MlflowClient, run: str) -> MoveResult:
    """`streamflow model rollback`: `production` back to `previous` (the two swap)."""
    current = alias_version(client, PRODUCTION_ALIAS)
    restored = alias_version(client, PREVIOUS_ALIAS)
    if restored is None:
        raise LookupError(
            "There is no `previous` version to roll back to; `streamflow model promote VERSION`"
            " moves production to any version"
        )
    if current is not None and current.version == restored.version:
        raise LookupError(f"`previous` and `production` are both v{current.version}")
    challenger, champion = _scores_if_possible(client, restored, current)
    reason = f"rollback to v{restored.version} ({challenger.as_of}) by {run}"
    decision = Decision(Action.PROMOTE, reason, challenger, champion, MIN_AUC_GAIN)
    return _move_by_hand(client, decision, current, run, action_name="rollback")


def _move_by_hand(
    client: MlflowClient,
    decision: Decision,
    current: ModelVersion | None,
    run: str,
    action_name: str,
) -> MoveResult:
    target = decision.challenger.version
    recorded_at = datetime.now(UTC).isoformat(timespec="seconds")
    set_tags(client, target, _decision_tags(decision, action_name, run, recorded_at))
    delete_tag(client, target, DEMOTED_BY_HAND_TAG)
    if current is not None:
        # Never re-promoted automatically until someone promotes it by hand again.
        demoted = f"{action_name} to v{target} by {run} at {recorded_at}"
        set_tags(
            client,
            current.version,
            {DEMOTED_BY_HAND_TAG: "true", f"{DECISION_PREFIX}demoted": demoted},
        )
        set_alias(client, PREVIOUS_ALIAS, current.version)
    set_alias(client, PRODUCTION_ALIAS, target)
    return _result(client, decision, recorded_at)


def _scores_if_possible(
    client: MlflowClient, target: ModelVersion, current: ModelVersion | None
) -> tuple[Contender, Contender | None]:
    """Both scored on the target's holdout when it was logged; the bare facts otherwise."""
    try:
        return score_contenders(client, target, current)
    except LookupError:
        return contender(target), contender(current) if current is not None else None


def _decision_tags(decision: Decision, action: str, run: str, at: str) -> dict[str, str]:
    champion = decision.champion
    return {
        f"{DECISION_PREFIX}action": str(action),
        f"{DECISION_PREFIX}reason": decision.reason[:4900],
        f"{DECISION_PREFIX}challenger_auc": _auc(decision.challenger),
        f"{DECISION_PREFIX}champion_auc": _auc(champion),
        DECIDED_AGAINST_TAG: str(champion.version) if champion else NO_CHAMPION,
        f"{DECISION_PREFIX}min_auc_gain": str(decision.min_auc_gain),
        f"{DECISION_PREFIX}decided_at": at,
        f"{DECISION_PREFIX}run": run,
    }


def _auc(contender_: Contender | None) -> str:
    if contender_ is None or contender_.auc is None:
        return "n/a"
    return f"{contender_.auc:.6f}"


def _result(client: MlflowClient, decision: Decision, recorded_at: str | None) -> MoveResult:
    production = alias_version(client, PRODUCTION_ALIAS)
    previous = alias_version(client, PREVIOUS_ALIAS)
    return MoveResult(
        decision=decision,
        production=int(production.version) if production else None,
        previous=int(previous.version) if previous else None,
        recorded_at=recorded_at,
    )
