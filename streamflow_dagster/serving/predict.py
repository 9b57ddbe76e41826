"""From online feature values to the model's answer (no FastAPI, no database).

The reference is the model's own `predict_proba` on the frame `ml.dataset.model_input`
builds, the function training and batch scoring use. A model whose shape `compiled` knows is
evaluated by the compiled path instead, but only after it gave bit-identical probabilities on
the version's holdout rows and on edge rows (every feature unset in turn, an unknown
category); otherwise scikit-learn's path serves it. `predict_proba` runs once: the label is
derived from the probability as FixedThresholdClassifier.predict derives it
(classes_[probability >= threshold]); the API tests compare both with the model itself.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..features.store import FEATURE_SERVICE
from ..ml.dataset import CATEGORICAL_FEATURES, model_input
from .compiled import CompiledModel, compile_model, verify
from .errors import reason
from .explain import Contributions, Explainer, make_explainer

log = logging.getLogger("streamflow.serve")

Row = Mapping[str, object]
# Holdout rows the compiled path must reproduce before it serves: a few thousand rows reach
# every leaf that matters many times over, and verifying on a 100,000-user month's whole
# holdout would cost ~150 MB of transient arrays at start-up.
MAX_VERIFY_ROWS = 2000
# What reading scikit-learn's private fitted attributes raises once a release renames, moves
# or reshapes them: the compiled path is an optimisation, so the model still loads and
# scikit-learn's own predict_proba serves it.
COMPILE_ERRORS = (AttributeError, KeyError, IndexError, TypeError, ValueError)


@dataclass(frozen=True)
class Scored:
    churn_probability: float
    prediction: int  # 1: the user is predicted to churn in the month after the features' AS_OF


# Why a model has no explanations (the answer says it instead of contributions).
NOT_EXPLAINED = (
    "explanations are computed for the two tree model kinds (hist_gradient_boosting, "
    "random_forest) once their compiled form is verified; this version is served by "
    "scikit-learn's own path"
)


@dataclass(frozen=True)
class Scorer:
    model: object
    features: list[str]  # the model's input columns, in its order
    compiled: CompiledModel | None  # verified fast path, or None
    trained_as_of: str | None = None  # AS_OF of the month the version was trained on
    explainer: Explainer | None = None  # exact path contributions (a verified tree model)

    @property
    def threshold(self) -> float | None:
        """The probability at or above which `prediction` is 1 (None: the model's own rule)."""
        threshold = getattr(self.model, "threshold", None)
        return threshold if isinstance(threshold, float) else None

    def explain(self, rows: Sequence[Row]) -> Contributions:
        if self.explainer is None:
            raise LookupError(NOT_EXPLAINED)
        return self.explainer.contributions(rows)

    feature_service: str = FEATURE_SERVICE  # the service the model was trained with

    def score(self, rows: Sequence[Row]) -> list[Scored]:
        """The model's probability and label for each row of feature values, in order."""
        if not rows:
            return []
        if self.compiled is not None:
            probability = self.compiled.probability(rows)
        else:
            probability = self.model.predict_proba(self.frame(rows))[:, 1]
        labels = labels_from_probability(self.model, probability, lambda: self.frame(rows))
        return [
            Scored(float(p), int(bool(label))) for p, label in zip(probability, labels, strict=True)
        ]

    def frame(self, rows: Sequence[Row]) -> pd.DataFrame:
        records = pd.DataFrame.from_records(list(rows), columns=self.features)
        return model_input(records, self.features)


def make_scorer(
    model, features: list[str], sample_rows: Sequence[Row], trained_as_of: str | None = None
) -> Scorer:
    """A scorer for `model`, on the compiled path if it is exact on the sample and edge rows.

    The compiled form, once verified, also gives the explanations (same trees, same walk).
    """
    try:
        compiled = compile_model(model)
        rows = [*sample_rows[:MAX_VERIFY_ROWS], *edge_rows(features, sample_rows[:1])]
        verified = (
            compiled is not None and bool(sample_rows) and verify(compiled, model, features, rows)
        )
        explainer = make_explainer(compiled, features) if verified else None
        if explainer is not None and not explainer.adds_up(rows, compiled.probability(rows)):
            log.warning("explanations do not add up to this model's output: none are given")
            explainer = None
    except COMPILE_ERRORS as error:
        log.warning(
            f"compiled path failed on this model ({reason(error, with_type=True)}): "
            "scikit-learn's own predict_proba serves it (a scikit-learn upgrade may have "
            "changed the fitted attributes serving/compiled.py reads)"
        )
        return Scorer(model, features, None, trained_as_of)
    if compiled is None:
        log.info("model shape not compiled: scikit-learn's own predict_proba serves it")
        return Scorer(model, features, None, trained_as_of)
    if not verified:
        log.warning("compiled path not verified on this model: scikit-learn's path serves it")
        return Scorer(model, features, None, trained_as_of)
    return Scorer(model, features, compiled, trained_as_of, explainer)


def edge_rows(features: list[str], base: Sequence[Row]) -> list[dict]:
    """Rows with each feature unset in turn, all unset, and unknown categories."""
    template = dict(base[0]) if base else {name: 0.0 for name in features}
    rows = [{**template, name: None} for name in features]
    rows.append(dict.fromkeys(features))
    for name in features:
        if name in CATEGORICAL_FEATURES:
            rows.append({**template, name: "not-a-known-category"})
    return rows


def labels_from_probability(model, probability: np.ndarray, frame) -> np.ndarray:
    threshold = getattr(model, "threshold", None)
    classes = getattr(model, "classes_", None)
    plain_labels = getattr(model, "pos_label", None) is None  # FixedThresholdClassifier's default
    if isinstance(threshold, float) and plain_labels and classes is not None and len(classes) == 2:
        return np.asarray(classes)[(probability >= threshold).astype(int)]
    return model.predict(frame())  # any other classifier: its own rule
