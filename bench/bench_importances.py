"""churn_model's permutation importances: scikit-learn's loop against StreamFlow's batches.

    .venv/bin/python bench/bench_importances.py [--users 7000] [--rounds 3]

One demo month (`generate_landing`, `--users`), split and both candidates (histogram
gradient boosting, random forest) fitted on each feature service's features as churn_model
does; then, alternating, `sklearn.inspection.permutation_importance(scoring="roc_auc",
n_repeats=3)` (the baseline, what churn_model called before) and
`evaluation.permutation_auc_drops` on the same holdout, under the same one-thread OpenMP
limit. Prints wall and CPU seconds per call and whether the results are identical.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from sklearn.inspection import permutation_importance

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # tests.integration.ml
from common import machine  # noqa: E402

from streamflow_dagster.landing.demo_data import generate_landing  # noqa: E402
from streamflow_dagster.ml.dataset import SEED, feature_columns, split_month  # noqa: E402
from streamflow_dagster.ml.evaluation import IMPORTANCE_REPEATS, permutation_auc_drops  # noqa: E402
from streamflow_dagster.ml.threads import openmp_limited  # noqa: E402
from streamflow_dagster.ml.training import candidates  # noqa: E402
from tests.integration.ml.support import training_frame  # noqa: E402


def timed(call):
    wall, cpu = time.perf_counter(), time.process_time()
    result = call()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=7000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"machine: {machine()}; load average {os.getloadavg()}")
    with tempfile.TemporaryDirectory() as folder:
        summary = generate_landing(Path(folder), users=args.users, months=1, seed=9)[0]
        month = training_frame(Path(folder) / summary.as_of.isoformat())
    features = feature_columns(month)
    split = split_month(month, features, SEED)
    X, y = split.X_holdout, split.y_holdout
    print(f"holdout: {len(X):,} rows x {X.shape[1]} features, {IMPORTANCE_REPEATS} repeats")
    totals = {"scikit-learn": [0.0, 0.0], "batched": [0.0, 0.0]}
    for name, pipeline in candidates(SEED, features, len(split.y_train)).items():
        model = pipeline.fit(split.X_train, split.y_train)
        for round_ in range(args.rounds):
            with openmp_limited():
                expected, wall_a, cpu_a = timed(
                    lambda model=model: (
                        permutation_importance(
                            model,
                            X,
                            y,
                            scoring="roc_auc",
                            n_repeats=IMPORTANCE_REPEATS,
                            random_state=SEED,
                        ).importances_mean
                    )
                )
                batched, wall_b, cpu_b = timed(
                    lambda model=model: permutation_auc_drops(model, X, y, SEED, IMPORTANCE_REPEATS)
                )
            same = np.array_equal(expected, batched)
            print(
                f"{name:<24} round {round_ + 1}: scikit-learn {wall_a:6.2f} s ({cpu_a:5.2f} CPU-s)"
                f"   batched {wall_b:6.2f} s ({cpu_b:5.2f} CPU-s)   identical: {same}"
            )
            totals["scikit-learn"][0] += wall_a
            totals["scikit-learn"][1] += cpu_a
            totals["batched"][0] += wall_b
            totals["batched"][1] += cpu_b
    calls = 2 * args.rounds
    for kind, (wall, cpu) in totals.items():
        print(f"{kind:<13} mean per call: {wall / calls:.2f} s wall, {cpu / calls:.2f} CPU-s")
    print(f"load average at the end {os.getloadavg()}")


if __name__ == "__main__":
    main()
