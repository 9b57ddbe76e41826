"""A faster evaluation of the registered pipeline for a few rows, verified to be exact.

For one row, scikit-learn's own path costs milliseconds that are almost all overhead: pandas
column selection in the ColumnTransformer, input validation, and HistGradientBoosting's 150
per-tree predictor calls, each opening an OpenMP region. This module evaluates the same fitted
objects with a handful of numpy operations on the same float64 values:

- the one-hot encoding of the categorical column(s) and the passthrough remainder, in the
  ColumnTransformer's own output order;
- every tree at once, level by level, with the trees' own rule (NaN follows
  `missing_go_to_left`, else `x <= threshold` goes left; a random forest compares the float32
  value, as its trees do);
- the trees' outputs summed tree by tree in scikit-learn's order (a cumulative sum is
  sequential, so the float64 rounding is identical): gradient boosting adds them to its
  baseline and applies its loss link, a random forest divides the sum by the tree count.

It only takes the shapes it knows (Pipeline[ColumnTransformer(OneHotEncoder, passthrough),
binary HistGradientBoostingClassifier without categorical splits or binary
RandomForestClassifier]); anything else is served by scikit-learn's own path. `verify`
compares both paths bit for bit on given rows, and the API uses the fast path only for a
model that passed it at load.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder

from ..ml.dataset import model_input

# Rows per evaluation step: its arrays are rows x trees, a few MB at this size.
CHUNK_ROWS = 1024


@dataclass(frozen=True)
class _OneHot:
    name: str  # the categorical input column
    categories: tuple[str, ...]


@dataclass(frozen=True)
class CompiledModel:
    """predict_proba(model_input(rows))[:, 1] of one fitted pipeline, from the rows' values."""

    columns: list[object]  # per output column: (_OneHot, category index) or an input name
    feature: np.ndarray  # per node, all trees stacked: the column it splits on
    threshold: np.ndarray
    missing_left: np.ndarray
    left: np.ndarray  # global node indices (tree offset added)
    right: np.ndarray
    is_leaf: np.ndarray
    value: np.ndarray
    cover: np.ndarray  # training samples (a forest: their bootstrap weight) reaching each node
    roots: np.ndarray  # each tree's root node
    levels: int  # the deepest leaf's depth: that many steps reach every leaf
    baseline: float  # gradient boosting's start value; 0.0 for a forest
    link_inverse: object | None  # boosting's inverse link (expit); None for a forest
    float32_inputs: bool  # a forest's trees compare float32 values

    def transform(self, rows: Sequence[Mapping[str, object]]) -> np.ndarray:
        """The ColumnTransformer's output for the rows, as model_input would feed it.

        model_input makes every non-categorical value float64 (booleans 1.0/0.0, None NaN);
        float() of a Python bool, int or float is the same IEEE value pandas produces.
        """
        out = np.empty((len(rows), len(self.columns)), dtype=np.float64)
        for column, source in enumerate(self.columns):
            if isinstance(source, tuple):
                onehot, category = source
                wanted = onehot.categories[category]
                out[:, column] = [row.get(onehot.name) == wanted for row in rows]
            else:
                out[:, column] = [_number(row.get(source)) for row in rows]
        return out

    def probability(self, rows: Sequence[Mapping[str, object]]) -> np.ndarray:
        # Arrays below are rows x trees: chunks keep them a few MB whatever the batch.
        if len(rows) > CHUNK_ROWS:
            chunks = range(0, len(rows), CHUNK_ROWS)
            return np.concatenate([self.probability(rows[i : i + CHUNK_ROWS]) for i in chunks])
        X = self.transform(rows)
        if self.float32_inputs:
            X = X.astype(np.float32).astype(np.float64)
        rows = np.arange(len(X))[:, None]
        node = np.broadcast_to(self.roots, (len(X), len(self.roots))).copy()
        for _ in range(self.levels):
            data = X[rows, self.feature[node]]
            go_left = np.where(
                np.isnan(data), self.missing_left[node], data <= self.threshold[node]
            )
            step = np.where(go_left, self.left[node], self.right[node])
            node = np.where(self.is_leaf[node], node, step)
        leaves = self.value[node]
        # total = start, then += each tree in order: exactly scikit-learn's float64 sums.
        terms = np.concatenate([np.full((len(X), 1), self.baseline), leaves], axis=1)
        total = np.cumsum(terms, axis=1)[:, -1]
        if self.link_inverse is None:
            return total / len(self.roots)
        return self.link_inverse(total)


def compile_model(model) -> CompiledModel | None:
    """The compiled form of `model`, or None when its shape is not one this module knows."""
    pipeline = _unwrap(model)
    if not isinstance(pipeline, Pipeline) or len(pipeline.steps) != 2:
        return None
    encoder, classifier = pipeline.steps[0][1], pipeline.steps[1][1]
    columns = _encoder_columns(encoder) if isinstance(encoder, ColumnTransformer) else None
    if columns is None or len(getattr(classifier, "classes_", [])) != 2:
        return None
    if isinstance(classifier, HistGradientBoostingClassifier):
        return _boosting(columns, classifier)
    if isinstance(classifier, RandomForestClassifier):
        return _forest(columns, classifier)
    return None


def _boosting(columns, classifier: HistGradientBoostingClassifier) -> CompiledModel | None:
    trees = [predictors[0].nodes for predictors in classifier._predictors]
    if classifier.n_trees_per_iteration_ != 1 or any(t["is_categorical"].any() for t in trees):
        return None
    sizes = [len(tree) for tree in trees]
    nodes = np.concatenate(trees)
    return _stacked(
        columns,
        sizes,
        feature=nodes["feature_idx"],
        threshold=nodes["num_threshold"],
        missing_left=nodes["missing_go_to_left"],
        left=nodes["left"],
        right=nodes["right"],
        is_leaf=nodes["is_leaf"],
        value=nodes["value"],
        cover=nodes["count"],
        levels=int(nodes["depth"].max()),
        baseline=float(np.asarray(classifier._baseline_prediction).ravel()[0]),
        link_inverse=classifier._loss.link.inverse,
        float32_inputs=False,
    )


def _forest(columns, forest: RandomForestClassifier) -> CompiledModel | None:
    # Trees on several threads add up in a varying order: only the sequential sum is exact.
    if forest.n_outputs_ != 1 or forest.n_jobs not in (None, 1):
        return None
    trees = [estimator.tree_ for estimator in forest.estimators_]
    sizes = [tree.node_count for tree in trees]

    def stacked(attribute: str) -> np.ndarray:
        return np.concatenate([getattr(tree, attribute) for tree in trees])

    left = stacked("children_left")
    return _stacked(
        columns,
        sizes,
        feature=np.maximum(stacked("feature"), 0),  # leaves hold -2: never read
        threshold=stacked("threshold"),
        missing_left=stacked("missing_go_to_left"),
        left=np.maximum(left, 0),
        right=np.maximum(stacked("children_right"), 0),
        is_leaf=left < 0,
        value=np.concatenate([tree.value[:, 0, 1] for tree in trees]),
        cover=stacked("weighted_n_node_samples"),
        levels=max(tree.max_depth for tree in trees),
        baseline=0.0,
        link_inverse=None,
        float32_inputs=True,
    )


def _stacked(columns, sizes: list[int], **arrays) -> CompiledModel:
    """One node table for all trees: child indices shifted by their tree's offset."""
    offsets = np.cumsum([0, *sizes[:-1]]).astype(np.intp)
    shift = np.repeat(offsets, sizes)
    return CompiledModel(
        columns=columns,
        feature=arrays["feature"].astype(np.intp),
        threshold=arrays["threshold"].astype(np.float64),
        missing_left=arrays["missing_left"].astype(bool),
        left=arrays["left"].astype(np.intp) + shift,
        right=arrays["right"].astype(np.intp) + shift,
        is_leaf=arrays["is_leaf"].astype(bool),
        value=arrays["value"].astype(np.float64),
        cover=arrays["cover"].astype(np.float64),
        roots=offsets,
        levels=arrays["levels"],
        baseline=arrays["baseline"],
        link_inverse=arrays["link_inverse"],
        float32_inputs=arrays["float32_inputs"],
    )


def verify(
    compiled: CompiledModel, model, features: list[str], rows: Sequence[Mapping[str, object]]
) -> bool:
    """True when the compiled probabilities equal scikit-learn's bit for bit on `rows`."""
    frame = model_input(pd.DataFrame.from_records(list(rows), columns=features), features)
    expected = model.predict_proba(frame)[:, 1]
    return bool(np.array_equal(compiled.probability(rows), expected))


def _number(value: object) -> float:
    if value is None or value is pd.NA:
        return np.nan
    return float(value)


def _unwrap(model):
    """The pipeline inside FixedThresholdClassifier / FrozenEstimator wrappers."""
    seen = 0
    while not isinstance(model, Pipeline) and hasattr(model, "estimator") and seen < 5:
        fitted = getattr(model, "estimator_", None)
        model = fitted if fitted is not None else model.estimator
        seen += 1
    return model


def _encoder_columns(encoder: ColumnTransformer) -> list[object] | None:
    """Per output column of the encoder: (one-hot, category index) or an input name."""
    names = list(getattr(encoder, "feature_names_in_", []))
    columns: list[object] = []
    for _name, transformer, selection in encoder.transformers_:
        selected = [c if isinstance(c, str) else names[int(c)] for c in selection]
        if transformer == "drop" or not selected:
            continue
        # A fitted "passthrough" remainder is an identity FunctionTransformer.
        identity = isinstance(transformer, FunctionTransformer) and transformer.func is None
        if transformer == "passthrough" or identity:
            columns.extend(selected)
        elif isinstance(transformer, OneHotEncoder):
            if transformer.handle_unknown != "ignore" or transformer.drop_idx_ is not None:
                return None
            if getattr(transformer, "_infrequent_enabled", False):
                return None
            for name, categories in zip(selected, transformer.categories_, strict=True):
                if not all(isinstance(c, str) for c in categories):
                    return None
                onehot = _OneHot(name, tuple(categories))
                columns.extend((onehot, index) for index in range(len(categories)))
        else:
            return None
    return columns
