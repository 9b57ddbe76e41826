"""Manual moves of alias `production`: `streamflow model promote VERSION` and `rollback`.

Recorded like the automatic decision (ml/decision_chain.py), and held until a newer month is
decided: the automatic step never undoes a manual move for the months it has already seen.
Neither moves `production` to a version that cannot serve: one whose MLflow run never
finished, or whose files do not load (even with --force); a champion whose files are broken
never blocks the move, and is not kept as `previous`.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from mlflow.entities.model_registry import ModelVersion
from mlflow.tracking import MlflowClient

from .champion import MoveResult, decision_tags, move_result, score_contenders
from .decision_chain import mark_moved_by_hand
from .fallback import load_or_reason
from .promotion import MIN_AUC_GAIN, Action, Contender, Decision
from .registry import (
    AS_OF_TAG,
    DECISION_PREFIX,
    DEMOTED_BY_HAND_TAG,
    PREVIOUS_ALIAS,
    PRODUCTION_ALIAS,
    REGISTERED_MODEL,
    alias_version,
    contender,
    delete_tag,
    get_version,
    set_alias,
    set_tags,
)
from .run_hygiene import unfinished_reason


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
        return move_result(client, decision, None)
    if not facts.checks_passed and not force:
        raise ValueError(
            f"v{version} did not pass its checks ({', '.join(facts.failed_checks) or 'pending'});"
            " pass --force to promote it anyway"
        )
    refuse_unservable(client, target, current, "promote")
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
    refuse_unservable(client, restored, current, "roll back")
    challenger, champion = _scores_if_possible(client, restored, current)
    reason = f"rollback to v{restored.version} ({challenger.as_of}) by {run}"
    decision = Decision(Action.PROMOTE, reason, challenger, champion, MIN_AUC_GAIN)
    return _move_by_hand(client, decision, current, run, action_name="rollback")


def refuse_unservable(
    client: MlflowClient, target: ModelVersion, current: ModelVersion | None, move: str
) -> None:
    """A ValueError saying why `production` cannot move to `target`; nothing when it can.

    Even --force cannot move it to a version whose run never finished or whose files do not
    load: serving would have nothing to load.
    """
    stays = f"production stays on v{current.version}" if current is not None else "nothing moved"
    unfinished, _ = unfinished_reason(client, target)
    if unfinished:
        raise ValueError(
            f"cannot {move} to v{target.version}: it was registered by an MLflow run that did "
            f"not finish ({unfinished}); {stays}. Re-run its month to register a complete version."
        )
    _, error = load_or_reason(client, target.version)
    if error:
        raise ValueError(
            f"cannot {move} to v{target.version}: its model files do not load ({error}); "
            f"{stays}. Re-run its month ({target.tags.get(AS_OF_TAG, '?')}) or pick another "
            "version (`streamflow model status`)."
        )


def _move_by_hand(
    client: MlflowClient,
    decision: Decision,
    current: ModelVersion | None,
    run: str,
    action_name: str,
) -> MoveResult:
    target = decision.challenger.version
    broken = _load_failure(client, decision.champion, current)
    if broken:  # only versions that load hold an alias: a rollback could not serve it
        decision = replace(
            decision,
            reason=f"{decision.reason}; v{current.version} does not load ({broken}), so it is "
            "not kept as `previous`",
        )
    recorded_at = datetime.now(UTC).isoformat(timespec="seconds")
    set_tags(client, target, decision_tags(decision, action_name, run, recorded_at))
    delete_tag(client, target, DEMOTED_BY_HAND_TAG)
    if current is not None:
        # Never re-promoted automatically until someone promotes it by hand again.
        demoted = f"{action_name} to v{target} by {run} at {recorded_at}"
        set_tags(
            client,
            current.version,
            {DEMOTED_BY_HAND_TAG: "true", f"{DECISION_PREFIX}demoted": demoted},
        )
        if broken:
            if _alias_number(client, PREVIOUS_ALIAS) in (int(current.version), target):
                client.delete_registered_model_alias(REGISTERED_MODEL, PREVIOUS_ALIAS)
        else:
            set_alias(client, PREVIOUS_ALIAS, current.version)
    set_alias(client, PRODUCTION_ALIAS, target)
    mark_moved_by_hand(client)  # holds until a newer month is decided
    return move_result(client, decision, recorded_at)


def _load_failure(
    client: MlflowClient, facts: Contender | None, current: ModelVersion | None
) -> str | None:
    """Why the version leaving `production` does not load, or None (it loads, or none left)."""
    if current is None:
        return None
    if facts is not None and facts.load_error:
        return facts.load_error
    if facts is not None and facts.auc is not None:
        return None  # it was loaded to be scored
    return load_or_reason(client, current.version)[1]


def _alias_number(client: MlflowClient, alias: str) -> int | None:
    version = alias_version(client, alias)
    return int(version.version) if version else None


def _scores_if_possible(
    client: MlflowClient, target: ModelVersion, current: ModelVersion | None
) -> tuple[Contender, Contender | None]:
    """Both scored on the target's holdout when it was logged; the bare facts otherwise."""
    try:
        return score_contenders(client, target, current)
    except LookupError:
        return contender(target), contender(current) if current is not None else None
