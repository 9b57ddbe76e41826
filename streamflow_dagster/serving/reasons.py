"""The `explanation` of a prediction answer (`explain=true`): its shape and how it is built.

The numbers come from `explain.py` (exact path contributions of the tree models); a model
without them (not a tree model, or one served by scikit-learn's own path) gets an explanation
that only carries `error`, the prediction itself being unaffected.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from .engine import Answer
from .explain import explanation
from .predict import NOT_EXPLAINED


class ContributionOut(BaseModel):
    feature: str
    value: Any = Field(description="The feature's value in `features_used`")
    contribution: float = Field(description="Signed: > 0 pushes towards churn")


class ExplanationOut(BaseModel):
    method: str | None = Field(None, examples=["path_contributions"])
    output: str | None = Field(
        None,
        description="What the contributions add up to: `log_odds` (gradient boosting) "
        "or `probability` (random forest)",
    )
    base_value: float | None = Field(None, description="The model's average raw output")
    top_contributions: list[ContributionOut] | None = Field(None, description="Largest first")
    other_features: float | None = Field(None, description="The other features' contributions")
    raw_output: float | None = Field(
        None, description="base_value + top_contributions + other_features"
    )
    error: str | None = Field(None, description="Why this model gives no explanation")


def explanations(answers: dict[str, Answer]) -> dict[str, dict]:
    """Per scored user, the explanation of its answer (one tree walk per model for all)."""
    by_model: dict[int, list[str]] = {}
    for user, answer in answers.items():
        if answer.scored is not None:
            by_model.setdefault(id(answer.model), []).append(user)
    reasons = {}
    for users in by_model.values():
        scorer = answers[users[0]].model.scorer
        if scorer.explainer is None:
            reasons.update(dict.fromkeys(users, {"error": NOT_EXPLAINED}))
            continue
        rows = [answers[user].features.values for user in users]
        found = scorer.explain(rows)
        for position, user in enumerate(users):
            reasons[user] = explanation(found, position, rows[position])
    return reasons
