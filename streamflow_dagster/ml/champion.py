"""What every move of alias `production` shares: the lock, scoring two versions, the record.

The automatic decisions are the chain's (ml/decision_chain.py), the manual moves
ml/manual_moves.py. Each records the decision (action, reason, both AUCs, champion, margin,
time, run) as tags of the version it concerns. One move at a time: callers hold
`promotion_lock`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

import pandas as pd
import psycopg
from mlflow.entities.model_registry import ModelVersion
from mlflow.tracking import MlflowClient
from sklearn.metrics import roc_auc_score

from .dataset import LABEL, model_features, model_input
from .fallback import load_or_reason
from .promotion import NO_CHAMPION, Contender, Decision
from .registry import (
    DECIDED_AGAINST_TAG,
    DECISION_PREFIX,
    PREVIOUS_ALIAS,
    PRODUCTION_ALIAS,
    alias_version,
    contender,
    load_holdout,
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
    client: MlflowClient,
    challenger: ModelVersion,
    champion: ModelVersion | None,
    loaded: dict[str, tuple[object | None, str | None]] | None = None,
) -> tuple[Contender, Contender | None]:
    """Both versions scored on the challenger's holdout; one that does not load carries why.

    `loaded`: {version: load_or_reason's answer} kept by a caller that decides several months
    in a row (the chain's champion is loaded once, not once per decision)."""
    holdout = load_holdout(client, challenger)
    loaded = {} if loaded is None else loaded
    scored = []
    for version in (challenger, champion):
        if version is None:
            scored.append(None)
            continue
        if str(version.version) not in loaded:
            loaded[str(version.version)] = load_or_reason(client, version.version)
        model, error = loaded[str(version.version)]
        if model is None:
            scored.append(replace(contender(version), load_error=error))
            continue
        scored.append(contender(version, holdout_auc(model, holdout, model_features(model))))
    return scored[0], scored[1]


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
