"""The decision chain (ml/chain.py) on the MLflow registry, and the forward-only alias move.

`walk_registry` reads every month's newest version, makes the decisions whose basis changed
(both versions scored on the challenger's holdout) and records them as tags of the month's
version. `decide_and_move` then moves alias `production` to the chain's champion as of its
newest decided month, but only forward: never when the alias reflects a newer month's
decision, nor when a manual move set it for the same month. Callers hold `promotion_lock`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from mlflow.entities.model_registry import ModelVersion
from mlflow.tracking import MlflowClient

from .chain import (
    PENDING,
    ChainMonth,
    ChainStep,
    basis,
    champion_as_of,
    newest_decided,
    walk,
)
from .champion import MoveResult, decision_tags, move_result, score_contenders
from .fallback import load_or_reason
from .promotion import MIN_AUC_GAIN, Action, Contender, Decision, decide, decide_without_scores
from .registry import (
    AS_OF_TAG,
    CHECKS_PENDING,
    CHECKS_TAG,
    DECIDED_AGAINST_TAG,
    DECISION_BASIS_TAG,
    DECISION_PREFIX,
    DEMOTED_BY_HAND_TAG,
    FAILED_CHECKS_TAG,
    PREVIOUS_ALIAS,
    PRODUCTION_ALIAS,
    PRODUCTION_AS_OF_TAG,
    PRODUCTION_BY_HAND_TAG,
    REGISTERED_MODEL,
    REPLACED_TAG,
    UNFINISHED_RUN_TAG,
    alias_version,
    contender,
    model_tags,
    month_versions,
    set_alias,
    set_model_tags,
    set_tags,
)


@dataclass(frozen=True)
class Chain:
    steps: list[ChainStep]
    versions: dict[int, ModelVersion]  # every month's newest version, by number

    def champion(self, as_of: str) -> ModelVersion | None:
        """The version that scores month `as_of`: the champion after months <= as_of."""
        number = champion_as_of(self.steps, as_of)
        return None if number is None else self.versions[number]

    def step(self, as_of: str) -> ChainStep | None:
        return next((s for s in self.steps if s.as_of == as_of), None)


def facts(version: ModelVersion) -> str:
    """The version's own facts a decision reads; a change re-makes its month's decision."""
    tags = version.tags
    unfinished = bool(tags.get(UNFINISHED_RUN_TAG))
    return (
        f"checks={tags.get(CHECKS_TAG, '')};failed={tags.get(FAILED_CHECKS_TAG, '')};"
        f"by_hand={tags.get(DEMOTED_BY_HAND_TAG, '')};unfinished={unfinished}"
    )


def chain_month(version: ModelVersion) -> ChainMonth:
    tags = version.tags
    return ChainMonth(
        as_of=tags[AS_OF_TAG],
        version=int(version.version),
        # Checks still pending: its churn_model is running (its own production_model decides
        # it), or died (then end_orphaned_runs marks it unfinished, and it is rejected).
        settled=tags.get(CHECKS_TAG) != CHECKS_PENDING or bool(tags.get(UNFINISHED_RUN_TAG)),
        facts=facts(version),
        recorded_basis=tags.get(DECISION_BASIS_TAG),
        recorded_action=tags.get(f"{DECISION_PREFIX}action"),
    )


def walk_registry(client: MlflowClient, run: str, min_auc_gain: float = MIN_AUC_GAIN) -> Chain:
    """Every month's step; decisions whose basis changed are made now and recorded."""
    by_month = month_versions(client)
    newest = {month: versions[-1] for month, versions in by_month.items()}
    versions = {int(v.version): v for v in newest.values()}
    loaded: dict = {}  # the models this walk loaded, by version: each is loaded once

    def decide_at(month: ChainMonth, champion: int | None) -> Decision:
        challenger = versions[month.version]
        decision = decide_month(client, challenger, versions.get(champion), min_auc_gain, loaded)
        replaced = [v for v in by_month[month.as_of][:-1] if not v.tags.get(REPLACED_TAG)]
        if replaced:
            names = ", ".join(f"v{v.version}" for v in replaced)
            note = f"it replaces {names}, trained on {month.as_of}'s earlier inputs"
            decision = replace(decision, reason=f"{decision.reason}; {note}")
        at = _now()
        tags = decision_tags(decision, decision.action, run, at)
        tags[DECISION_BASIS_TAG] = basis(champion, month.facts)
        set_tags(client, month.version, tags)
        for old in replaced:  # trained on the month's inputs before it was re-run
            note = f"replaced by v{month.version}, trained on {month.as_of}'s earlier inputs"
            set_tags(client, old.version, {REPLACED_TAG: f"{note} ({at}, {run})"})
        return decision

    return Chain(walk([chain_month(v) for v in newest.values()], decide_at), versions)


def decide_month(
    client: MlflowClient,
    challenger: ModelVersion,
    champion: ModelVersion | None,
    min_auc_gain: float = MIN_AUC_GAIN,
    loaded: dict | None = None,
) -> Decision:
    """The month's model against the champion before it, on the month's holdout (`loaded`:
    models already loaded, by version, shared by the decisions of one walk)."""
    # The chain's basis, not an earlier decision's champion, says whether to decide again.
    facts_of = [_fresh(contender(v)) if v else None for v in (challenger, champion)]
    early = decide_without_scores(facts_of[0], facts_of[1], min_auc_gain)
    if early is not None and early.action is not Action.PROMOTE:
        return early  # no score can change it: nothing to load
    try:
        scored = score_contenders(client, challenger, champion, loaded)
    except LookupError as err:  # no holdout logged: nothing to compare on
        reason = f"v{challenger.version} cannot be compared: {err}; re-run its month"
        return Decision(Action.REJECT, reason, facts_of[0], facts_of[1], min_auc_gain)
    challenger_facts, champion_facts = (_fresh(c) if c else None for c in scored)
    if champion_facts is not None and champion_facts.load_error:
        # A champion that cannot serve never blocks the way out.
        alone = decide_without_scores(challenger_facts, None, min_auc_gain)
        reason = (
            f"champion v{champion_facts.version} ({champion_facts.as_of}) cannot serve: its "
            f"files do not load ({champion_facts.load_error}); {alone.reason}"
        )
        return Decision(alone.action, reason, challenger_facts, champion_facts, min_auc_gain)
    early = decide_without_scores(challenger_facts, champion_facts, min_auc_gain)
    return early or decide(challenger_facts, champion_facts, min_auc_gain)


def _fresh(facts: Contender) -> Contender:
    return replace(facts, decided_against=None)


def decide_and_move(
    client: MlflowClient,
    run: str,
    min_auc_gain: float = MIN_AUC_GAIN,
    as_of: str | None = None,
    on_other_decision: Callable[[MoveResult], None] | None = None,
) -> MoveResult:
    """The automatic step: walk the chain, then move `production` forward to its champion.

    The result's decision is month `as_of`'s (the newest month's when None); UNCHANGED when
    that decision was already recorded, or the month has no model. Every other month decided
    now (earlier months of a range run) is passed to `on_other_decision` (e.g. for its card).
    """
    chain = walk_registry(client, run, min_auc_gain)
    moved = move_forward(client, chain)
    step = chain.step(as_of) if as_of else (chain.steps[-1] if chain.steps else None)
    decision = _reported(chain, step, as_of, min_auc_gain)
    wrote = moved or any(s.decision is not None for s in chain.steps)
    result = move_result(client, decision, _now() if wrote else None)
    if on_other_decision is not None:
        for other in chain.steps:
            if other is not step and other.decision is not None:
                on_other_decision(replace(result, decision=other.decision))
    return result


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _reported(
    chain: Chain,
    step: ChainStep | None,
    as_of: str | None,
    min_auc_gain: float,
) -> Decision:
    if step is not None and step.decision is not None:
        return step.decision
    champion = chain.champion(as_of) if as_of else None
    if step is None:
        what = f"{as_of} has no model" if as_of else "no registered model yet"
        holder = f"v{champion.version}" if champion else "no champion"
        reason = f"{what}: the champion as of that month stays ({holder})"
        facts_of = contender(champion) if champion else None
        return Decision(Action.UNCHANGED, reason, None, facts_of, min_auc_gain)
    version = chain.versions[step.version]
    facts_of = contender(version)
    if step.action == PENDING:
        reason = f"v{step.version} ({step.as_of}): checks pending; its own production_model decides"
    else:
        recorded = version.tags.get(f"{DECISION_PREFIX}reason", "")
        reason = f"v{step.version} ({step.as_of}) already decided: {step.action} ({recorded})"
    against = version.tags.get(DECIDED_AGAINST_TAG)
    champion = chain.versions.get(int(against)) if against and against.isdigit() else None
    return Decision(
        Action.UNCHANGED,
        reason,
        facts_of,
        contender(champion) if champion else None,
        min_auc_gain,
    )


def move_forward(client: MlflowClient, chain: Chain) -> bool:
    """`production` (and `previous`) to the chain's newest champion, only ever forward.

    True when the aliases or the month they reflect changed.
    """
    end = newest_decided(chain.steps)
    if end is None or end.champion_after is None:
        return False  # nothing promoted yet: whatever holds the alias stays
    tags = model_tags(client)
    reflected = tags.get(PRODUCTION_AS_OF_TAG, "")
    if end.as_of < reflected:
        return False  # the alias reflects a newer month's decision (that month is re-running)
    if end.as_of == reflected and tags.get(PRODUCTION_BY_HAND_TAG) == "true":
        return False  # moved by hand since that month's decision: a newer month decides next
    target = end.champion_after
    current = alias_version(client, PRODUCTION_ALIAS)
    promoted_at = next(s for s in chain.steps if s.version == target)
    previous = promoted_at.champion_before  # what a rollback restores: the champion it beat
    if current is not None and int(current.version) == target and end.as_of == reflected:
        return False
    if previous is not None and load_or_reason(client, previous)[1] is not None:
        previous = None  # a rollback could not serve it: no alias on a version that fails
    if previous is not None:
        set_alias(client, PREVIOUS_ALIAS, previous)
    elif alias_version(client, PREVIOUS_ALIAS) is not None:
        client.delete_registered_model_alias(REGISTERED_MODEL, PREVIOUS_ALIAS)
    set_alias(client, PRODUCTION_ALIAS, target)
    set_model_tags(client, {PRODUCTION_AS_OF_TAG: end.as_of, PRODUCTION_BY_HAND_TAG: "false"})
    return True


def newest_month(client: MlflowClient) -> str | None:
    """The newest AS_OF with a registered version (what a manual move records it reflects)."""
    months = month_versions(client)
    return max(months) if months else None


def mark_moved_by_hand(client: MlflowClient) -> None:
    """A manual move holds until a newer month is decided (called by ml/manual_moves.py)."""
    month = newest_month(client)
    if month:
        set_model_tags(client, {PRODUCTION_AS_OF_TAG: month, PRODUCTION_BY_HAND_TAG: "true"})
