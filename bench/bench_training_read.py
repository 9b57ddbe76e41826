"""The month's training set read two ways on the same database: psycopg rows vs COPY + Arrow.

    .venv/bin/python bench/bench_training_read.py STREAMFLOW_HOME [AS_OF]

STREAMFLOW_HOME is a state folder whose warehouse holds features.training_set for AS_OF
(e.g. bench_million.py's, while its run is past training_set). Prints CPU and wall seconds
and this process's peak RSS after each read (the COPY read goes first), then checks both
reads give the model identical inputs, users, labels and months.
"""

from __future__ import annotations

import os
import resource
import sys
import time
from datetime import date

import pandas as pd
from psycopg import sql


def main() -> None:
    os.environ["STREAMFLOW_HOME"] = sys.argv[1]
    as_of = date.fromisoformat(sys.argv[2] if len(sys.argv) > 2 else "2024-01-31")
    from streamflow_dagster.features import training_table
    from streamflow_dagster.features.training import read_frame
    from streamflow_dagster.ml.dataset import feature_columns, model_input
    from streamflow_dagster.platform.db import connect, warehouse_url

    query = sql.SQL("select * from {} where as_of = %(as_of)s order by user_id").format(
        sql.Identifier("features", training_table.TRAINING_SET_TABLE)
    )
    frames = {}
    with connect(warehouse_url()) as conn:
        for name, read in (
            (
                "COPY + Arrow (load_training_set)",
                lambda: training_table.load_training_set(conn, as_of),
            ),
            ("psycopg rows (before)", lambda: read_frame(conn, query, {"as_of": as_of})),
        ):
            cpu, wall = time.process_time(), time.perf_counter()
            frames[name] = read()
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            print(
                f"{name}: {len(frames[name]):,} rows, CPU {time.process_time() - cpu:.1f} s, "
                f"wall {time.perf_counter() - wall:.1f} s, peak RSS so far {peak:,.0f} MB"
            )
    new, old = frames.values()
    features = feature_columns(old)
    assert list(new.columns) == list(old.columns)
    pd.testing.assert_frame_equal(
        model_input(new, features), model_input(old, features), check_exact=True
    )
    for column in ("user_id", "churn_label", "as_of"):
        assert new[column].tolist() == old[column].tolist(), column
    print("identical: model inputs, users, labels, months")


if __name__ == "__main__":
    main()
