"""Training and evaluation as pure code: deterministic, raw features in, threshold chosen."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import skops.io

from streamflow_dagster.landing.contract import NET_SERVICES
from streamflow_dagster.landing.demo_data import generate_landing
from streamflow_dagster.ml.checks import auc_floor_check, not_degenerate_check
from streamflow_dagster.ml.dataset import (
    LABEL,
    NotEnoughLabels,
    feature_columns,
    model_features,
    model_input,
    split_month,
)
from streamflow_dagster.ml.evaluation import choose_threshold, evaluate, holdout_metrics
from streamflow_dagster.ml.plots import write_plots
from streamflow_dagster.ml.serialization import (
    TRUSTED_TYPES,
    UntrustedModelError,
    load_model_dir,
    untrusted_types,
)
from streamflow_dagster.ml.training import candidates, train
from tests.integration.ml.support import FEATURES, training_frame


@pytest.fixture(scope="module")
def month(tmp_path_factory) -> pd.DataFrame:
    folder = tmp_path_factory.mktemp("landing")
    summary = generate_landing(folder, users=2000, months=1, seed=9)[0]
    return training_frame(folder / summary.as_of.isoformat())


@pytest.fixture(scope="module")
def trained(month):
    return train(month, feature_columns(month), seed=42)


def test_same_data_and_seed_give_the_same_model_and_metrics(month, trained):
    again = train(month, feature_columns(month), seed=42)
    split = trained.split
    first = evaluate(trained.model, split.X_holdout, split.y_holdout, trained.threshold, 42)
    second = evaluate(again.model, split.X_holdout, split.y_holdout, again.threshold, 42)
    assert first.metrics == second.metrics
    assert np.array_equal(first.churn_probability, second.churn_probability)
    assert (trained.algorithm, trained.threshold) == (again.algorithm, again.threshold)
    assert trained.validation_auc == again.validation_auc


def test_the_trained_model_keeps_only_its_holdout_and_the_row_counts(month, trained):
    split = split_month(month, feature_columns(month), seed=42)
    kept = trained.split
    assert not hasattr(kept, "X_train") and not hasattr(kept, "X_val")
    assert kept.rows == split.rows
    assert kept.X_holdout.equals(split.X_holdout)
    assert np.array_equal(kept.y_holdout, split.y_holdout)
    assert np.array_equal(kept.holdout_users, split.holdout_users)


def test_both_candidates_compete_and_the_better_on_validation_wins(trained):
    assert set(trained.validation_auc) == {"hist_gradient_boosting", "random_forest"}
    assert trained.algorithm == max(trained.validation_auc, key=trained.validation_auc.get)


def test_the_model_takes_the_raw_features_and_applies_its_threshold(month, trained):
    assert model_features(trained.model) == FEATURES
    raw = month.head(50)  # as stored: net_service text, booleans, integers, one label column
    probability = trained.model.predict_proba(model_input(raw, FEATURES))[:, 1]
    predicted = trained.model.predict(model_input(raw, FEATURES))
    assert np.array_equal(predicted, probability >= trained.threshold)


def test_threshold_is_chosen_on_validation_not_left_at_one_half(month, trained):
    split = split_month(month, feature_columns(month), seed=42)  # the split train() made
    validation = trained.model.predict_proba(split.X_val)[:, 1]
    assert trained.threshold == choose_threshold(split.y_val, validation)
    assert trained.threshold < 0.5  # ~7% churners: 0.5 would flag almost nobody
    best = holdout_metrics(split.y_val, validation, trained.threshold)["f1"]
    assert best >= holdout_metrics(split.y_val, validation, 0.5)["f1"]


def test_split_is_stratified_disjoint_and_seeded(month):
    split = split_month(month, FEATURES, seed=1)
    assert sum(split.rows.values()) == len(month)
    assert abs(split.rows["holdout"] - 0.2 * len(month)) <= 1
    assert abs(split.rows["validation"] - 0.2 * len(month)) <= 1
    rates = [y.mean() for y in (split.y_train, split.y_val, split.y_holdout)]
    assert max(rates) - min(rates) < 0.01
    parts = [set(x.index) for x in (split.X_train, split.X_val, split.X_holdout)]
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    assert np.array_equal(split_month(month, FEATURES, seed=1).holdout_users, split.holdout_users)
    assert not np.array_equal(
        split_month(month, FEATURES, seed=2).holdout_users, split.holdout_users
    )


def test_too_few_churners_is_said_clearly(month):
    few = month[~month[LABEL]].head(500).copy()
    few.loc[few.index[:5], LABEL] = True
    with pytest.raises(NotEnoughLabels, match="5 churners"):
        split_month(few, FEATURES, seed=1)


def test_model_input_types_psycopg_values():
    frame = pd.DataFrame(
        {
            "net_service": ["dsl", None],
            "paperless_billing": pd.Series([True, None], dtype=object),
            "months_active": pd.Series([3, None], dtype=object),
            "monthly_fee": [20.5, 30.0],
        }
    )
    typed = model_input(frame, ["net_service", "paperless_billing", "months_active", "monthly_fee"])
    assert typed["net_service"].tolist() == ["dsl", None]
    assert typed["paperless_billing"].dtype == "float64"
    assert typed["paperless_billing"].iloc[0] == 1.0 and np.isnan(typed["months_active"].iloc[1])
    with pytest.raises(KeyError, match="skips_7d"):
        model_input(frame, ["skips_7d"])


def test_both_candidates_serialize_with_only_the_declared_types(month, tmp_path):
    split = split_month(month, FEATURES, seed=3)
    for name, pipeline in candidates(seed=3).items():
        path = tmp_path / f"{name}.skops"
        skops.io.dump(pipeline.fit(split.X_train, split.y_train), path)
        assert untrusted_types(path) == [], name
        assert set(skops.io.get_untrusted_types(file=path)) <= set(TRUSTED_TYPES)


def test_a_pickled_model_is_refused(trained, tmp_path):
    import mlflow.sklearn

    mlflow.sklearn.save_model(
        trained.model, tmp_path / "m", serialization_format="cloudpickle", pip_requirements=[]
    )
    with pytest.raises(UntrustedModelError, match="only loads 'skops'"):
        load_model_dir(tmp_path / "m")


def test_checks_pass_a_real_model_and_fail_broken_ones(trained):
    split = trained.split
    probability = trained.model.predict_proba(split.X_holdout)[:, 1]
    assert auc_floor_check(holdout_metrics(split.y_holdout, probability, 0.5)["auc"]).passed
    assert not auc_floor_check(0.55).passed
    assert not_degenerate_check(probability, trained.threshold).passed
    constant = not_degenerate_check(np.full(100, 0.07), 0.05)
    assert not constant.passed and constant.metadata["predicted_stay"] == 0


def test_plots_are_png_files(trained, tmp_path: Path):
    split = trained.split
    evaluation = evaluate(trained.model, split.X_holdout, split.y_holdout, trained.threshold, 0)
    paths = write_plots(
        tmp_path,
        split.y_holdout,
        evaluation.churn_probability,
        trained.threshold,
        evaluation.importances,
        "test",
    )
    assert set(paths) == {"roc", "precision_recall", "confusion", "importances"}
    for path in paths.values():
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert list(evaluation.importances.index)[0] in FEATURES


@pytest.mark.parametrize("batch_rows", [200_000, 1_000])
def test_batched_permutation_importances_equal_scikit_learns_exactly(
    month, batch_rows, monkeypatch
):
    """Both candidate kinds (decision_function and predict_proba), one batch and many."""
    from sklearn.inspection import permutation_importance

    from streamflow_dagster.ml import evaluation

    monkeypatch.setattr(evaluation, "IMPORTANCE_BATCH_ROWS", batch_rows)
    features = feature_columns(month)
    split = split_month(month, features, 42)
    for pipeline in candidates(42, features, len(split.y_train)).values():
        model = pipeline.fit(split.X_train, split.y_train)
        X, y = split.X_holdout.iloc[:300], split.y_holdout[:300]
        expected = permutation_importance(
            model, X, y, scoring="roc_auc", n_repeats=3, random_state=7
        ).importances_mean
        assert np.array_equal(evaluation.permutation_auc_drops(model, X, y, 7, 3), expected)


def test_chunked_parallel_scoring_keeps_row_order(month, trained, monkeypatch):
    from streamflow_dagster.ml import scoring

    monkeypatch.setattr(scoring, "CHUNK_ROWS", 300)  # several chunks on both threads
    chunked = scoring.churn_probability(trained.model, month, FEATURES)
    whole = trained.model.predict_proba(model_input(month, FEATURES))[:, 1]
    assert np.array_equal(chunked, whole)


def test_the_model_encodes_the_vocabulary_the_platform_stores(month, trained):
    """One vocabulary: the demo data, the model's categories and the online values agree."""
    assert set(month["net_service"]) == set(NET_SERVICES)  # Telco's spelling: DSL, Fiber optic, No
    encoder = trained.model.estimator.named_steps["encode"]
    [categories] = encoder.named_transformers_["net_service"].categories_
    assert list(categories) == list(NET_SERVICES)
    row = month.head(1)
    for service in NET_SERVICES:  # each stored value moves the score through its own column
        encoded = encoder.transform(model_input(row.assign(net_service=service), FEATURES))
        assert encoded[0, list(NET_SERVICES).index(service)] == 1.0
