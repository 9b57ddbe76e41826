"""Why a prediction: exact path contributions (Saabas) from the fitted trees' own structure.

Every node of a tree gets an expected value: the mean of the leaf values below it, weighted by
the training samples that reached each leaf (a forest's trees: their bootstrap weight). Walking
a row from the root to its leaf, each split moves the expected value from the node's to the
child's; that step is credited to the feature the node splits on. The steps telescope, so per
tree: leaf value = root's expected value + the steps. Over the ensemble:

- gradient boosting: raw output (log-odds) = baseline + sum over trees of the leaf values, so
  base_value = baseline + the roots' expected values, and the contributions are the steps'
  sums: base_value + contributions = log-odds exactly (up to float64 rounding, ~1e-12);
- random forest: probability = mean over trees of the leaf values, so base_value = the mean of
  the roots' expected values and the contributions are the steps' means.

base_value is the model's average raw output over its training rows. The one-hot columns of a
categorical feature are credited to that feature (their steps added). Path contributions, not
TreeSHAP: the cost is one more walk of the trees the compiled path already does (well under a
millisecond per row); like every per-path attribution they credit features split on near the
root more than Shapley values would, which the answer names (`method`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .compiled import CompiledModel

METHOD = "path_contributions"  # Saabas: exact per-tree path attribution
LOG_ODDS, PROBABILITY = "log_odds", "probability"
# Contributions an answer lists by default: the few a retention team can act on; the rest
# is summed into `other_features` so the answer still adds up to its raw output.
TOP_CONTRIBUTIONS = 5
# Decimals of the numbers in an explanation: the listed terms add up to raw_output within
# 15 * 0.5e-6, far below what any reading of a log-odds or probability needs.
DECIMALS = 6
# How close base_value + contributions must come to the model's probability for a version's
# explanations to be served: float64 sums of a few hundred terms differ by ~1e-15.
ADDS_UP = 1e-9


@dataclass(frozen=True)
class Contributions:
    features: list[str]  # the model's input features, in its order
    output: str  # what the raw output is: log_odds or probability
    base_value: float
    values: np.ndarray  # rows x features: each feature's signed contribution
    raw_output: np.ndarray  # per row: what the trees compute (before boosting's link)


@dataclass(frozen=True)
class Explainer:
    """Per node (all trees stacked, as the compiled model holds them): where a row goes next,
    what that step moves, and which input feature it is credited to."""

    compiled: CompiledModel
    features: list[str]
    expected: np.ndarray  # the cover-weighted mean of the leaf values below the node
    node_feature: np.ndarray  # the input feature the node splits on (a one-hot column's source)
    left: np.ndarray  # a leaf's children are itself, with a step of 0: a walk stays there
    right: np.ndarray
    left_step: np.ndarray  # expected[left] - expected[node]
    right_step: np.ndarray

    @property
    def output(self) -> str:
        return PROBABILITY if self.compiled.link_inverse is None else LOG_ODDS

    @property
    def _scale(self) -> float:
        # A forest averages its trees; boosting adds them.
        return 1.0 / len(self.compiled.roots) if self.output == PROBABILITY else 1.0

    @property
    def base_value(self) -> float:
        roots = self.expected[self.compiled.roots]
        return self.compiled.baseline + float(roots.sum()) * self._scale

    def contributions(self, rows: Sequence[Mapping[str, object]]) -> Contributions:
        model = self.compiled
        X = model.transform(rows)
        if model.float32_inputs:
            X = X.astype(np.float32).astype(np.float64)
        n, features = len(X), len(self.features)
        row = np.broadcast_to(np.arange(n)[:, None], (n, len(model.roots)))
        node = np.broadcast_to(model.roots, row.shape).copy()
        where, steps = [], []
        for _ in range(model.levels):
            data = X[row, model.feature[node]]
            go_left = np.where(
                np.isnan(data), model.missing_left[node], data <= model.threshold[node]
            )
            where.append(row * features + self.node_feature[node])
            steps.append(np.where(go_left, self.left_step[node], self.right_step[node]))
            node = np.where(go_left, self.left[node], self.right[node])
        values = np.bincount(
            np.concatenate(where, axis=None),
            weights=np.concatenate(steps, axis=None),
            minlength=n * features,
        ).reshape(n, features)
        raw = model.baseline + model.value[node].sum(axis=1) * self._scale
        return Contributions(self.features, self.output, self.base_value, values * self._scale, raw)

    def adds_up(self, rows: Sequence[Mapping[str, object]], probability: np.ndarray) -> bool:
        """base_value + contributions give `probability` (the model's own) on `rows`."""
        found = self.contributions(rows)
        raw = found.base_value + found.values.sum(axis=1)
        link = self.compiled.link_inverse
        explained = raw if link is None else link(raw)
        return bool(np.allclose(explained, probability, rtol=0, atol=ADDS_UP))


def make_explainer(compiled: CompiledModel, features: list[str]) -> Explainer:
    """The explainer of a compiled model whose encoder reads exactly `features`."""
    sources = [c[0].name if isinstance(c, tuple) else c for c in compiled.columns]
    column_feature = np.array([features.index(name) for name in sources], dtype=np.intp)
    expected = _expected_values(compiled)
    itself = np.arange(len(expected))
    left = np.where(compiled.is_leaf, itself, compiled.left)
    right = np.where(compiled.is_leaf, itself, compiled.right)
    return Explainer(
        compiled,
        list(features),
        expected,
        node_feature=column_feature[compiled.feature],
        left=left,
        right=right,
        left_step=expected[left] - expected,
        right_step=expected[right] - expected,
    )


def _expected_values(model: CompiledModel) -> np.ndarray:
    """Per node, the leaf values below it averaged by cover, computed from the leaves up.

    One pass sets every node whose children are final; after `levels` passes (the deepest
    leaf's depth) every node is. Weights are the children's covers, so a parent is their
    weighted mean whatever rounding its own recorded cover carries. Only leaves need their true
    value for the contributions to add up; internal values decide how a leaf's value is shared.
    """
    expected = np.where(model.is_leaf, model.value, 0.0)
    internal = ~model.is_leaf
    left, right = model.left[internal], model.right[internal]
    left_cover, right_cover = model.cover[left], model.cover[right]
    total = left_cover + right_cover
    weighted = total > 0  # no weight below (never with >= 20 rows per leaf): plain mean
    left_share = np.where(weighted, left_cover / np.where(weighted, total, 1.0), 0.5)
    for _ in range(model.levels):
        expected[internal] = left_share * expected[left] + (1 - left_share) * expected[right]
    return expected


def explanation(
    contributions: Contributions,
    position: int,
    values: Mapping[str, object],
    top: int = TOP_CONTRIBUTIONS,
) -> dict:
    """The answer's `explanation` for one row: the `top` largest contributions by size."""
    terms = contributions.values[position]
    order = sorted(range(len(terms)), key=lambda i: (-abs(terms[i]), i))
    listed, rest = order[:top], order[top:]
    name = contributions.features
    return {
        "method": METHOD,
        "output": contributions.output,
        "base_value": round(contributions.base_value, DECIMALS),
        "top_contributions": [
            {
                "feature": name[i],
                "value": values.get(name[i]),
                "contribution": round(float(terms[i]), DECIMALS),
            }
            for i in listed
        ],
        "other_features": round(float(sum(terms[i] for i in rest)), DECIMALS),
        "raw_output": round(float(contributions.raw_output[position]), DECIMALS),
    }
