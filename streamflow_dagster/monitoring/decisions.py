"""The monitors' decisions, apart from reading and reporting: which months a month's drift is
measured against, which model scored a month, what AUC that model promised and how sure that
promise is, and whether the month's scores were made out of time.

Pure Python (pandas only for the scores column): the monitor assets fetch the inputs and call
these; the unit tests call them directly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date

import pandas as pd

from ..ml.dataset import HOLDOUT_ROWS_METRIC
from .performance import hanley_mcneil_se

PREVIOUS_MONTH, PRODUCTION_MONTH = "previous month", "production model's training month"


def _tag_problem(value: str | None) -> str:
    return "no `as_of` tag" if not value else f"an unreadable `as_of` tag {value!r}"


def tag_month(value: str | None) -> date | None:
    """The month an `as_of` tag names, or None when it is missing or not an ISO date."""
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


# -- feature drift ---------------------------------------------------------------------------
@dataclass(frozen=True)
class DriftReferences:
    months: dict[str, str | None]  # label -> the reference month's AS_OF, None: there is none
    reasons: dict[str, str]  # label -> why it has no comparison (read when it has none)

    def to_read(self, as_of: date) -> set[str]:
        """The reference months whose features must be read (never the month itself)."""
        return {month for month in self.months.values() if month and month != str(as_of)}


def drift_references(
    as_of: date,
    previous: date | None,
    production_version: str | None,
    production_tag: str | None,
) -> DriftReferences:
    """The month before `as_of` and the Production model's training month, each with the
    reason it cannot be compared with (the first month; the model trained on `as_of` itself;
    no Production model; a Production model without a readable `as_of` tag)."""
    production_month = tag_month(production_tag)
    if production_version is None:
        production_reason = "no reference month: no model holds alias `production` yet"
    elif production_month is None:
        production_reason = (
            f"no reference month: the Production model v{production_version} has "
            f"{_tag_problem(production_tag)}, so its training month is unknown"
        )
    elif production_month == as_of:
        production_reason = (
            f"no reference month: the Production model was trained on {as_of} itself"
        )
    else:
        production_reason = ""  # compared, unless its month has no users (said by the asset)
    return DriftReferences(
        months={
            PREVIOUS_MONTH: str(previous) if previous else None,
            PRODUCTION_MONTH: str(production_month) if production_month else None,
        },
        reasons={
            PREVIOUS_MONTH: f"no reference month: {as_of} is the first landed month",
            PRODUCTION_MONTH: production_reason,
        },
    )


# -- realized performance --------------------------------------------------------------------
@dataclass(frozen=True)
class ScoringModel:
    version: str | None  # the version that scored most of the month's users; None: no scores
    versions: dict[str, int]  # every version that scored some of them -> users


def scoring_model(model_versions: pd.Series) -> ScoringModel:
    """The model version behind a month's scores: the one that scored most users.

    A month is normally scored by one version; a re-scored month can mix two, and then the
    majority's version is the one whose promise the month is held to (ties: the lowest).
    """
    counts = model_versions.dropna().astype(int).value_counts()
    if counts.empty:
        return ScoringModel(None, {})
    top = counts.max()
    version = min(int(v) for v, n in counts.items() if n == top)
    return ScoringModel(str(version), {str(int(v)): int(n) for v, n in counts.sort_index().items()})


@dataclass(frozen=True)
class Expectation:
    auc: float | None  # the model's AUC on its own month's holdout; None: not logged
    se: float  # its standard error; 0.0 when the holdout's size is not known
    note: str  # why the s.e. is 0, for the check's description ("" when it is known)


def holdout_expectation(metrics: dict[str, float], version: str) -> Expectation:
    """The AUC a version promised (its run's `auc`) and its Hanley-McNeil standard error.

    The error comes from the holdout's size as the run logged it (`holdout_rows`) and its churn
    rate: never rebuilt from today's split share, which may differ from the one it trained with.
    """
    auc = metrics.get("auc")
    if auc is None:
        return Expectation(None, 0.0, "")
    holdout, churn_rate = metrics.get(HOLDOUT_ROWS_METRIC), metrics.get("churn_rate")
    missing = [
        name
        for name, value in ((HOLDOUT_ROWS_METRIC, holdout), ("churn_rate", churn_rate))
        if value is None or not math.isfinite(value)
    ]
    if missing:
        return Expectation(
            auc,
            0.0,
            f"v{version}'s run logged no {' or '.join(f'`{m}`' for m in missing)} metric "
            "(trained before the holdout's size was logged), so the s.e. of its holdout AUC is "
            "unknown and counted as 0: the margin holds only this month's noise. Retrain its "
            "month (churn_model) to log it",
        )
    if holdout < 2:
        return Expectation(auc, 0.0, f"v{version}'s run logged a holdout of {holdout:g} rows")
    holdout = int(holdout)
    positives = round(churn_rate * holdout)
    return Expectation(auc, hanley_mcneil_se(auc, positives, holdout - positives), "")


def out_of_time(model_month: date | None, as_of: date) -> bool | None:
    """Whether a model trained on `model_month` scored `as_of` before seeing its outcomes;
    None when the model's month is unknown."""
    if model_month is None:
        return None
    return model_month < as_of


def out_of_time_caveat(version: str, model_month: date | None, tag: str | None, as_of: date) -> str:
    """The sentence the result carries when the AUC is not (known to be) out of time."""
    scored = out_of_time(model_month, as_of)
    if scored:
        return ""
    if scored is None:
        return (
            f"Note: v{version} has {_tag_problem(tag)}, so whether these scores were made "
            "before the month's labels (an out-of-time estimate) is unknown."
        )
    trained_on = (
        "this month's own labels" if model_month == as_of else f"a later month ({model_month})"
    )
    return (
        f"Note: v{version} was trained on {trained_on}, so this AUC is not an out-of-time "
        "estimate (optimistic): scores made before the labels land are."
    )
