"""Moves of alias `production`: the automatic decision (manual ones: ml/manual_moves.py).

Each move keeps `previous` on the version that held `production` just before it, and
records the decision (action, reason, both AUCs, champion, margin, time, run) as tags of
the version it concerns. One move at a time: callers hold `promotion_lock`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import pandas as pd
import psycopg
from mlflow.entities.model_registry import ModelVersion
from mlflow.tracking import MlflowClient
from sklearn.metrics import roc_auc_score

from .dataset import LABEL, model_features, model_input
from .fallback import best_usable, load_or_reason, stale_reason
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
    AS_OF_TAG,
    DECIDED_AGAINST_TAG,
    DECISION_PREFIX,
    PREVIOUS_ALIAS,
    PRODUCTION_ALIAS,
    REGISTERED_MODEL,
    alias_version,
    contender,
    load_holdout,
    newest_month_version,
    set_alias,
    set_tags,
)
from .run_hygiene import unfinished_reason
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
    """Both versions scored on the challenger's holdout; one that does not load carries why."""
    holdout = load_holdout(client, challenger)
    scored = []
    for version in (challenger, champion):
        if version is None:
            scored.append(None)
            continue
        model, error = load_or_reason(client, version.version)
        if model is None:
            scored.append(replace(contender(version), load_error=error))
            continue
        scored.append(contender(version, holdout_auc(model, holdout, model_features(model))))
    return scored[0], scored[1]


def decide_and_move(
    client: MlflowClient, run: str, min_auc_gain: float = MIN_AUC_GAIN, up_to: str | None = None
) -> MoveResult:
    """The automatic step: newest month's version vs `production`, then the move if any.

    `up_to` (an AS_OF): the newest month's version among months up to it, for a run that
    decides a range of months one after the other.

    A challenger registered by a run that never finished is refused; one whose run is still
    going is left to its own production_model. A champion that cannot serve (files that do not
    load, or an older version of the challenger's re-run month) is replaced: see ml/fallback.
    """
    challenger_version = newest_month_version(client, up_to=up_to)
    champion_version = alias_version(client, PRODUCTION_ALIAS)
    if challenger_version is None:
        return apply(client, decide(None, None, min_auc_gain), run)
    unfinished, running = unfinished_reason(client, challenger_version)
    challenger_facts = replace(contender(challenger_version), unfinished_run=unfinished)
    if running:
        still = f"v{challenger_version.version}: {unfinished}; its own production_model decides"
        decision = Decision(Action.UNCHANGED, still, challenger_facts, None, min_auc_gain)
        return apply(client, decision, run)
    if champion_version is not None:
        unusable = stale_reason(champion_version, challenger_version)
        if unusable is None:
            unusable = _load_error(client, champion_version)
        if unusable is not None:
            return _replace_champion(
                client,
                challenger_facts,
                challenger_version,
                champion_version,
                unusable,
                run,
                min_auc_gain,
            )
    champion_facts = contender(champion_version) if champion_version else None
    early = decide_without_scores(challenger_facts, champion_facts, min_auc_gain)
    if early is not None and early.action is not Action.PROMOTE:
        decision = early  # no score can change it: nothing to load
    else:  # scored even without a champion, so the record has the challenger's AUC
        challenger, champion = score_contenders(client, challenger_version, champion_version)
        decision = decide_without_scores(challenger, champion, min_auc_gain) or decide(
            challenger, champion, min_auc_gain
        )
    return apply(client, decision, run)


def _load_error(client: MlflowClient, version: ModelVersion) -> str | None:
    _, error = load_or_reason(client, version.version)
    return f"its files do not load ({error})" if error else None


def _replace_champion(
    client: MlflowClient,
    challenger_facts: Contender,
    challenger_version: ModelVersion,
    champion_version: ModelVersion,
    unusable: str,
    run: str,
    min_auc_gain: float,
) -> MoveResult:
    """The champion cannot serve: the challenger against the best usable earlier version."""
    old = int(champion_version.version)
    try:
        holdout = load_holdout(client, challenger_version)
    except LookupError:
        holdout = None
    baseline, skipped = best_usable(client, challenger_version, holdout, {old}, holdout_auc)
    challenger = None
    if old != challenger_facts.version:  # else the broken champion is the newest month itself
        challenger = _scored(client, challenger_facts, challenger_version, holdout)
    inner = _inner_decision(challenger, baseline, min_auc_gain)
    winner = challenger if inner.action is Action.PROMOTE else baseline
    note = f"champion v{old} ({champion_version.tags.get(AS_OF_TAG, '?')}) cannot serve: {unusable}"
    if skipped:
        note += f"; not usable either: {'; '.join(skipped)}"
    old_loads = winner is None and _load_error(client, champion_version) is None
    if winner is not None:
        outcome = f"production moves to v{winner.version} ({winner.as_of}), the best usable version"
    elif old_loads:
        outcome = f"v{old} stays production: no other version is usable"
    else:
        outcome = "alias production removed: no version loads; re-run a month"
    reason = f"{note}. {inner.reason}. {outcome}"
    decision = Decision(inner.action, reason, challenger, baseline, min_auc_gain)
    recorded_at = datetime.now(UTC).isoformat(timespec="seconds")
    if challenger is not None:
        set_tags(
            client, challenger.version, decision_tags(decision, inner.action, run, recorded_at)
        )
    set_tags(
        client, old, {f"{DECISION_PREFIX}replaced": f"{unusable} ({recorded_at}, {run})"[:4900]}
    )
    if winner is not None:
        if winner is challenger and baseline is not None:
            set_alias(client, PREVIOUS_ALIAS, baseline.version)  # usable: what a rollback restores
        set_tags(client, winner.version, {f"{DECISION_PREFIX}fallback": reason[:4900]})
        set_alias(client, PRODUCTION_ALIAS, winner.version)
    elif not old_loads:
        client.delete_registered_model_alias(REGISTERED_MODEL, PRODUCTION_ALIAS)
    return move_result(client, decision, recorded_at)


def _scored(
    client: MlflowClient, facts: Contender, version: ModelVersion, holdout: pd.DataFrame | None
) -> Contender:
    """The challenger with its AUC on its holdout (or its recorded AUC), or why it fails to load."""
    model, error = load_or_reason(client, version.version)
    if model is None:
        return replace(facts, load_error=error)
    if holdout is None:
        return replace(facts, auc=float(version.tags.get("holdout_auc", "nan")))
    return replace(facts, auc=holdout_auc(model, holdout, model_features(model)))


def _inner_decision(
    challenger: Contender | None, baseline: Contender | None, min_auc_gain: float
) -> Decision:
    if challenger is None:
        return Decision(Action.REJECT, "no challenger to consider", None, baseline, min_auc_gain)
    # Decided afresh: a decision recorded against the old champion no longer holds.
    challenger = replace(challenger, decided_against=None)
    early = decide_without_scores(challenger, baseline, min_auc_gain)
    return early or decide(challenger, baseline, min_auc_gain)


def apply(client: MlflowClient, decision: Decision, run: str) -> MoveResult:
    """Record the decision on the challenger and move the aliases if it says promote."""
    if decision.action is Action.UNCHANGED:
        return move_result(client, decision, None)
    challenger = decision.challenger
    recorded_at = datetime.now(UTC).isoformat(timespec="seconds")
    set_tags(client, challenger.version, decision_tags(decision, decision.action, run, recorded_at))
    if decision.action is Action.PROMOTE:
        if decision.champion is not None:
            set_alias(client, PREVIOUS_ALIAS, decision.champion.version)
        set_alias(client, PRODUCTION_ALIAS, challenger.version)
    return move_result(client, decision, recorded_at)


def decision_tags(decision: Decision, action: str, run: str, at: str) -> dict[str, str]:
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


def move_result(client: MlflowClient, decision: Decision, recorded_at: str | None) -> MoveResult:
    production = alias_version(client, PRODUCTION_ALIAS)
    previous = alias_version(client, PREVIOUS_ALIAS)
    return MoveResult(
        decision=decision,
        production=int(production.version) if production else None,
        previous=int(previous.version) if previous else None,
        recorded_at=recorded_at,
    )
