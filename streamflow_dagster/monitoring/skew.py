"""Training/serving skew measured from what was served: the feature values each answer used
(serving.prediction_log.features) against the offline values of the same users and AS_OF month
(the point-in-time read training uses), feature by feature.

Tolerance per feature kind: strings, booleans and integers must be equal; floating-point
values may differ by a relative REL_TOLERANCE (see below). Unset on both sides is equal; unset on
one side only is a difference. Pure pandas/numpy: the serving_skew asset reads and reports.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..lib.checks import CheckOutcome

# Feast value types (ViewSpec.features) compared with a tolerance; every other kind is exact.
FLOAT_KINDS = {"DOUBLE", "FLOAT"}
# The same double read through another path (Feast's Redis store, a float32 cast, a text round
# trip at 15 digits) differs in the 7th significant digit at most; a value that differs more
# is another value, not a rounding.
REL_TOLERANCE = 1e-6
# Below this magnitude two floats count as equal (a relative tolerance alone fails at zero).
ABS_TOLERANCE = 1e-9
# Differences shown per feature in the check's metadata (the counts cover every one).
EXAMPLES_PER_FEATURE = 5


@dataclass(frozen=True)
class FeatureSkew:
    feature: str
    kind: str  # Feast value type name, e.g. DOUBLE
    compared: int  # served values compared (rows of users the offline month holds)
    differing: int
    examples: tuple[tuple[str, object, object], ...]  # (user_id, served, offline)

    @property
    def tolerance(self) -> str:
        return f"relative {REL_TOLERANCE:g}" if self.kind in FLOAT_KINDS else "exact"


@dataclass(frozen=True)
class SkewReport:
    rows: int  # distinct (user, served values) rows compared
    users: int
    missing_offline: tuple[str, ...]  # served users the offline month does not hold
    features: tuple[FeatureSkew, ...]
    not_compared: tuple[str, ...]  # served features the offline read does not have

    @property
    def skewed(self) -> list[FeatureSkew]:
        return [f for f in self.features if f.differing]


def values_equal(served: pd.Series, offline: pd.Series, kind: str) -> np.ndarray:
    """Element-wise: equal within the kind's tolerance, or unset on both sides."""
    served_unset, offline_unset = served.isna().to_numpy(), offline.isna().to_numpy()
    both_set = ~served_unset & ~offline_unset
    equal = np.zeros(len(served), dtype=bool)
    if both_set.any():
        a, b = served[both_set], offline[both_set]
        if kind in FLOAT_KINDS:
            x, y = a.astype(float).to_numpy(), b.astype(float).to_numpy()
            scale = np.maximum(np.abs(x), np.abs(y))
            equal[both_set] = np.abs(x - y) <= REL_TOLERANCE * scale + ABS_TOLERANCE
        else:
            equal[both_set] = [_same(v, w) for v, w in zip(a, b, strict=True)]
    return equal | (served_unset & offline_unset)


def _same(served: object, offline: object) -> bool:
    # Both sides as plain Python values: numpy/pandas scalars compare like the JSON's ones, and a
    # bool never equals 1 here (True == 1 in Python, but a served flag is not a count).
    s, o = _plain(served), _plain(offline)
    if isinstance(s, bool) or isinstance(o, bool):
        return type(s) is type(o) and s == o
    return s == o


def _plain(value: object) -> object:
    return value.item() if isinstance(value, np.generic) else value


def compare_served(
    served: pd.DataFrame, offline: pd.DataFrame, kinds: dict[str, str], join_key: str = "user_id"
) -> SkewReport:
    """`served`: one row per (user, served values), a column per feature served; `offline`: the
    month's offline features, one row per user; `kinds`: feature -> Feast value type name."""
    offline_users = set(offline[join_key])
    missing = sorted(set(served[join_key]) - offline_users)
    present = served[served[join_key].isin(offline_users)]
    joined = present.merge(
        offline, on=join_key, how="left", suffixes=("", "__offline"), validate="many_to_one"
    )
    served_features = [c for c in served.columns if c != join_key]
    compared = [f for f in served_features if f in kinds and f in offline.columns]
    results = []
    for feature in compared:
        served_values, offline_values = joined[feature], joined[f"{feature}__offline"]
        equal = values_equal(served_values, offline_values, kinds[feature])
        differing = np.flatnonzero(~equal)
        examples = tuple(
            (
                str(joined[join_key].iat[i]),
                _shown(served_values.iat[i]),
                _shown(offline_values.iat[i]),
            )
            for i in differing[:EXAMPLES_PER_FEATURE]
        )
        results.append(FeatureSkew(feature, kinds[feature], len(joined), len(differing), examples))
    return SkewReport(
        rows=len(served),
        users=served[join_key].nunique(),
        missing_offline=tuple(missing),
        features=tuple(results),
        not_compared=tuple(f for f in served_features if f not in compared),
    )


def _shown(value: object) -> object:
    """A value for metadata: None for unset, plain Python otherwise."""
    return None if pd.isna(value) else _plain(value)


def skew_outcome(report: SkewReport, as_of: str, rows_without_features: int = 0) -> CheckOutcome:
    """Fails (ERROR) when any served value differs from the offline one beyond its tolerance,
    or a served user is not in the offline month at all; passes with nothing served."""
    base = {
        "served_rows": report.rows,
        "served_users": report.users,
        "rows_without_features": rows_without_features,
        "tolerances": {f.feature: f.tolerance for f in report.features},
    }
    if report.rows == 0:
        unlogged = (
            f" ({rows_without_features} predictions were logged before the log recorded features)"
            if rows_without_features
            else ""
        )
        return CheckOutcome(
            True,
            "ERROR",
            f"Nothing to compare: no prediction served features of {as_of}{unlogged}. The check "
            "compares once the API has answered with this month's online features",
            base,
        )
    skewed = report.skewed
    metadata = {
        **base,
        "differing_values": {f.feature: f.differing for f in skewed},
        "examples": {
            f.feature: [{"user_id": u, "served": s, "offline": o} for u, s, o in f.examples]
            for f in skewed
        },
        "users_missing_offline": len(report.missing_offline),
        "not_compared": list(report.not_compared),
    }
    problems = [
        f"{f.feature} ({f.differing} of {f.compared} served values, {f.tolerance}; e.g. user "
        f"{f.examples[0][0]} served {f.examples[0][1]!r}, offline {f.examples[0][2]!r})"
        for f in skewed
    ]
    if report.missing_offline:
        shown = ", ".join(report.missing_offline[:EXAMPLES_PER_FEATURE])
        problems.append(
            f"{len(report.missing_offline)} served user(s) absent from the offline month "
            f"(e.g. {shown})"
        )
    if problems:
        return CheckOutcome(
            False,
            "ERROR",
            f"Training/serving skew in {as_of}: served values differ from the offline store for "
            + "; ".join(problems)
            + ". Re-materialize online_features for the month (the online store holds other "
            "values than the marts), then compare again",
            metadata,
        )
    return CheckOutcome(
        True,
        "ERROR",
        f"No skew: {report.rows} served rows of {report.users} users match the offline values "
        f"of {as_of} on all {len(report.features)} features",
        metadata,
    )
