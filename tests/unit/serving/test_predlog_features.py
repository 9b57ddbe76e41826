"""The prediction log's features column: JSON PostgreSQL's jsonb takes, old spooled rows."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from psycopg.types.json import Jsonb

from streamflow_dagster.serving.predlog import COLUMNS, _database_row, _features_json
from streamflow_dagster.serving.spool import Spool

FEATURES = {"net_service": "DSL", "skips_7d": 3, "paperless_billing": True, "fee": 19.85}
ROW = (
    datetime(2024, 8, 1, 12, 0, tzinfo=UTC),
    "u-1",
    "production",
    "production",
    3,
    0.42,
    True,
    datetime(2024, 7, 31, tzinfo=UTC),
    FEATURES,
)


def test_a_row_has_a_value_per_column_and_its_features_go_in_as_jsonb():
    assert len(ROW) == len(COLUMNS) and COLUMNS[-1] == "features"
    *columns, features = _database_row(ROW)
    assert tuple(columns) == ROW[:-1]
    assert isinstance(features, Jsonb) and features.obj == FEATURES
    assert _database_row((*ROW[:-1], None))[-1] is None


def test_values_json_cannot_hold_are_null_or_text():
    text = _features_json({"a": float("nan"), "b": float("inf"), "c": 1.5, "d": None})
    assert json.loads(text) == {"a": None, "b": None, "c": 1.5, "d": None}
    assert "NaN" not in text and "Infinity" not in text  # jsonb would refuse the batch
    assert json.loads(_features_json({"when": datetime(2024, 7, 31)})) == {
        "when": "2024-07-31 00:00:00"
    }


def test_features_survive_the_spool(tmp_path):
    spool = Spool(tmp_path)
    spool.save([ROW])
    rows, claimed = spool.claim()
    assert rows == [ROW]
    Spool.release(claimed)


def test_rows_spooled_before_the_features_column_get_a_null_for_it(tmp_path):
    from streamflow_dagster.serving.predlog import PredictionLog

    Spool(tmp_path).save([ROW[:-1]])  # an older release's row: no features
    # A database that refuses connections: the replayed rows go back to the spool at stop.
    log = PredictionLog("postgresql://127.0.0.1:1/none", spool_dir=tmp_path)
    log.start()
    log.stop()
    rows, claimed = Spool(tmp_path).claim()
    assert rows == [(*ROW[:-1], None)]
    Spool.release(claimed)
