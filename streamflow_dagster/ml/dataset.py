"""The model's rows: input typing shared by training and scoring, and the seeded 3-way split."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..landing.contract import CONTRACT_TYPES, NET_SERVICES

# The seed of the split and of both candidate models: same rows + same seed, same model.
SEED = 42
LABEL = "churn_label"
KEY_COLUMNS = ("as_of", "user_id")
# Encoded inside the pipeline (one-hot over the contract's values), so the registered model
# takes the raw feature; every other feature is a number or a boolean, fed as float64.
# A model encodes those of its own features listed here (churn_v1: net_service only).
CATEGORICAL_FEATURES = {"net_service": NET_SERVICES, "contract_type": CONTRACT_TYPES}
# 20% of users are the holdout (metrics, checks, promotion), 20% validation (model choice and
# threshold), 60% train. At 7,000 users and ~7% churn that leaves ~100 churners in each of
# the holdout and validation sets: enough for AUC to be stable to about +-0.02.
HOLDOUT_SHARE = 0.2
VALIDATION_SHARE = 0.2
# The run metric with the holdout's row count (the monitors read it back: never rebuilt from
# HOLDOUT_SHARE, which may have changed since the run).
HOLDOUT_ROWS_METRIC = "holdout_rows"
# Fewer churners than this leaves under 4 per evaluation set: metrics would be noise.
MIN_ROWS_PER_CLASS = 20


class NotEnoughLabels(ValueError):
    """The month's labels cannot support a train/validation/holdout split."""


def feature_columns(training_set: pd.DataFrame) -> list[str]:
    """The feature columns of a stored training set: all but the keys and the label."""
    return [c for c in training_set.columns if c not in (*KEY_COLUMNS, LABEL)]


def model_input(frame: pd.DataFrame, features: list[str]) -> pd.DataFrame:
    """The features in the model's order and types: categories as text, the rest float64.

    Booleans become 1.0/0.0 and missing values NaN, whatever the source (psycopg objects,
    Arrow, pandas nullable types), so training, scoring and serving feed identical frames.
    """
    missing = [name for name in features if name not in frame.columns]
    if missing:
        raise KeyError(f"The frame has no column(s) {missing}; the model needs {features}")
    columns = {}
    for name in features:
        values = frame[name]
        if name in CATEGORICAL_FEATURES:
            columns[name] = values.astype(object).where(values.notna(), None)
        else:
            if values.dtype == object:  # psycopg's Python values: None (or pd.NA) is missing
                values = values.where(values.notna(), np.nan)
            columns[name] = values.astype("float64")
    return pd.DataFrame(columns, index=frame.index)


def model_features(model) -> list[str]:
    """The raw feature names a fitted model (or pipeline) was trained on, in order."""
    names = getattr(model, "feature_names_in_", None)
    if names is None:
        raise ValueError(f"{type(model).__name__} does not record its feature names")
    return [str(name) for name in names]


def labels(frame: pd.DataFrame) -> np.ndarray:
    if frame[LABEL].isna().any():
        raise ValueError(f"{frame[LABEL].isna().sum()} rows have no {LABEL}")
    return frame[LABEL].astype(bool).to_numpy()


@dataclass(frozen=True)
class Split:
    """Train, validation and holdout rows of one month (features typed, labels boolean)."""

    X_train: pd.DataFrame
    y_train: np.ndarray
    X_val: pd.DataFrame
    y_val: np.ndarray
    X_holdout: pd.DataFrame
    y_holdout: np.ndarray
    holdout_users: np.ndarray  # user_id of each holdout row

    @property
    def rows(self) -> dict[str, int]:
        return {
            "train": len(self.y_train),
            "validation": len(self.y_val),
            "holdout": len(self.y_holdout),
        }

    def holdout(self) -> Holdout:
        """What outlives the fit: the holdout rows and every part's row count."""
        return Holdout(self.X_holdout, self.y_holdout, self.holdout_users, self.rows)


@dataclass(frozen=True)
class Holdout:
    """The part of a Split a trained model keeps. Its train and validation rows (80% of the
    month: 800,000 rows of each compared service's features at 1,000,000 users) are dropped
    once the model is fitted and its threshold chosen."""

    X_holdout: pd.DataFrame
    y_holdout: np.ndarray
    holdout_users: np.ndarray  # user_id of each holdout row
    rows: dict[str, int]  # train, validation, holdout


def split_month(training_set: pd.DataFrame, features: list[str], seed: int) -> Split:
    """A stratified 60/20/20 split; the same rows and seed always give the same split."""
    # Imported here: the Dagster definitions import this module's constants, and every
    # Dagster process loads the definitions.
    from sklearn.model_selection import train_test_split

    y = labels(training_set)
    positives, negatives = int(y.sum()), int((~y).sum())
    if min(positives, negatives) < MIN_ROWS_PER_CLASS:
        raise NotEnoughLabels(
            f"{positives} churners and {negatives} non-churners: need at least "
            f"{MIN_ROWS_PER_CLASS} of each to train, validate and hold out"
        )
    # Row order from the database is user_id order; sort anyway so the split never depends on it.
    # Only the columns the split needs are sorted: the month holds every compared service's.
    ordered = (
        training_set[["user_id", LABEL, *(f for f in features if f in training_set.columns)]]
        .sort_values("user_id", kind="stable")
        .reset_index(drop=True)
    )
    y = labels(ordered)
    X = model_input(ordered, features)
    users = ordered["user_id"].to_numpy()
    del ordered  # X holds the features: the sorted copy is not needed for the split
    X_rest, X_hold, y_rest, y_hold, _, users_hold = train_test_split(
        X, y, users, test_size=HOLDOUT_SHARE, stratify=y, random_state=seed
    )
    del X  # split into X_rest and X_hold
    X_train, X_val, y_train, y_val = train_test_split(
        X_rest,
        y_rest,
        test_size=VALIDATION_SHARE / (1 - HOLDOUT_SHARE),
        stratify=y_rest,
        random_state=seed,
    )
    return Split(X_train, y_train, X_val, y_val, X_hold, y_hold, users_hold)
