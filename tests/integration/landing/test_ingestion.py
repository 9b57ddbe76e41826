"""Landing ingestion on the real embedded PostgreSQL: quarantine, atomicity, missing files."""

from __future__ import annotations

import dagster as dg
import psycopg
import pytest

from streamflow_dagster.defs.landing import landing_ingestion
from streamflow_dagster.defs.resources import LandingResource, WarehouseResource
from streamflow_dagster.landing.contract import LANDING_TABLES, TABLES_BY_NAME
from tests.integration.helpers import raw_checksums, table_checksum, write_month

pytestmark = pytest.mark.integration

JAN, FEB = "2024-01-31", "2024-02-29"


def users(*ids):
    return [f"{i},2023-05-01,female,no,yes,no" for i in ids]


def subs(*ids, **override):
    fee = override.get("fee", "29.85")
    return [f"{i},3,true,false,month_to_month,true,{fee},89.55,dsl,no,no,no,no" for i in ids]


def usage(*ids):
    return [f"{i},12.5,31.0,2,4,1" for i in ids]


def single(*ids):
    return [f"{i},0" for i in ids]


def support(*ids):
    return [f"{i},1,4.5" for i in ids]


def clean_month(ids=("u1", "u2", "u3")) -> dict[str, list[str]]:
    return {
        "users": users(*ids),
        "subscriptions": subs(*ids),
        "usage_agg_30d": usage(*ids),
        "payments_agg_90d": single(*ids),
        "support_agg_90d": support(*ids),
        "labels": [f"{i},false" for i in ids],
    }


def materialize(tmp_path, database_url, as_of, *, raise_on_error=True):
    instance = dg.DagsterInstance.ephemeral()
    return dg.materialize(
        [landing_ingestion],
        partition_key=as_of,
        instance=instance,
        resources={
            "warehouse": WarehouseResource(database_url=database_url),
            "landing": LandingResource(path=str(tmp_path / "landing")),
        },
        raise_on_error=raise_on_error,
    )


def month_checksums(conn, as_of):
    tables = [*(t.name for t in LANDING_TABLES), "quarantine"]
    return {t: table_checksum(conn, "raw", t, "as_of = %s", (as_of,)) for t in tables}


def check_results(result) -> dict[tuple[str, str], dg.AssetCheckEvaluation]:
    return {
        (e.asset_key.to_user_string(), e.check_name): e
        for e in result.get_asset_check_evaluations()
    }


def test_clean_month_loads_every_table(tmp_path, database_url):
    write_month(tmp_path / "landing", JAN, clean_month())
    result = materialize(tmp_path, database_url, JAN)
    assert result.success
    checks = check_results(result)
    assert len(checks) == 18 and all(c.passed for c in checks.values())
    with psycopg.connect(database_url) as conn:
        counts = dict(
            conn.execute(
                "select 'users', count(*) from raw.users union all "
                "select 'labels', count(*) from raw.labels union all "
                "select 'quarantine', count(*) from raw.quarantine"
            ).fetchall()
        )
    assert counts == {"users": 3, "labels": 3, "quarantine": 0}


def test_bad_rows_are_quarantined_with_reasons_and_nothing_else_changes(tmp_path, database_url):
    landing = tmp_path / "landing"
    write_month(landing, FEB, clean_month(("u1", "u2")))
    assert materialize(tmp_path, database_url, FEB).success
    with psycopg.connect(database_url) as conn:
        feb_before = month_checksums(conn, FEB)

    month = clean_month(("u1", "u2", "u3"))
    month["subscriptions"] = [
        *subs("u1", "u2"),
        *subs("u2"),  # identical duplicate
        *subs("u3"),
        *subs("u3", fee="10.00"),  # conflicting duplicate
        *subs(""),  # blank user_id
        "u4,three,true,false,month_to_month,true,10,30,dsl,no,no,no,no",  # non-numeric
        *subs("u5", fee="-1.00"),  # negative money
        "u6,3,true,false,month_to_month,true,10,30,satellite,no,no,no,no",  # unknown net_service
        "u7,0,Yes,No,One year,1,10,,Fiber optic,0,0,0,0",  # Telco spelling, blank total_paid: fine
        '"u8",2,true,false,two_year,true,"1,000.00",30,dsl,no,no,no,no',  # quoted comma: bad number
        "u9,2,true,fal",  # truncated last line
    ]
    month["users"] = users("u1", "u2", "u3", "u7")
    bom_crlf = (
        "\ufeff"
        + ",".join(
            [
                "user_id",
                "watch_hours_30d",
                "avg_session_mins_7d",
                "unique_devices_30d",
                "skips_7d",
                "rebuffer_events_7d",
                "extra_col",
            ]
        )
        + "\r\n"
        + "\r\n".join(f"{r},x" for r in usage("u1", "u2", "u3"))
        + "\r\n"
    )
    del month["usage_agg_30d"]
    write_month(landing, JAN, month, raw_files={"usage_agg_30d.csv": bom_crlf.encode()})
    # subscriptions rejects 9 of 13 rows: the blocking check fails, the run still records it.
    result = materialize(tmp_path, database_url, JAN, raise_on_error=False)

    checks = check_results(result)
    assert not checks[("raw_subscriptions", "reject_rate")].passed
    assert checks[("raw_subscriptions", "reject_rate")].severity == dg.AssetCheckSeverity.ERROR
    assert not checks[("raw_usage_agg_30d", "schema")].passed  # extra column warns
    assert checks[("raw_usage_agg_30d", "schema")].severity == dg.AssetCheckSeverity.WARN
    assert checks[("raw_usage_agg_30d", "reject_rate")].passed  # BOM + CRLF accepted
    # Every check records its month; the stopped table is not materialized (red for JAN).
    assert {e.partition for e in result.get_asset_check_evaluations()} == {JAN}
    materialized = {
        m.asset_key.to_user_string()
        for m in result.asset_materializations_for_node("landing_ingestion")
    }
    assert "raw_subscriptions" not in materialized and "raw_users" in materialized

    with psycopg.connect(database_url) as conn:
        quarantined = conn.execute(
            "select table_name, line_number, reason from raw.quarantine where as_of = %s "
            "order by table_name, line_number",
            (JAN,),
        ).fetchall()
        loaded = [
            r[0]
            for r in conn.execute(
                "select user_id from raw.subscriptions where as_of = %s order by 1", (JAN,)
            )
        ]
        u7 = conn.execute(
            "select total_paid, plan_stream_tv, paperless_billing "
            "from raw.subscriptions where as_of = %s and user_id = 'u7'",
            (JAN,),
        ).fetchone()
        usage_rows = conn.execute(
            "select count(*) from raw.usage_agg_30d where as_of = %s", (JAN,)
        ).fetchone()[0]
        feb_after = month_checksums(conn, FEB)

    assert quarantined == [
        ("subscriptions", 4, "user_id: 'u2' duplicates line 3 (identical record)"),
        ("subscriptions", 5, "user_id: 'u3' appears on lines 5, 6 with conflicting values"),
        ("subscriptions", 6, "user_id: 'u3' appears on lines 5, 6 with conflicting values"),
        ("subscriptions", 7, "user_id: blank but required"),
        ("subscriptions", 8, "months_active: 'three' is not an integer"),
        ("subscriptions", 9, "monthly_fee: '-1.00' is negative"),
        (
            "subscriptions",
            10,
            "net_service: 'satellite' is not one of DSL, Fiber optic, No "
            "(or none, No internet service)",
        ),
        ("subscriptions", 12, "monthly_fee: '1,000.00' is not a number"),
        ("subscriptions", 13, "expected 13 fields as in the header, found 4 (truncated line?)"),
    ]
    assert loaded == ["u1", "u2", "u7"]
    assert u7 == (None, True, True)
    with psycopg.connect(database_url) as conn:
        conn_values = conn.execute(
            "select user_id, contract_type, net_service from raw.subscriptions "
            "where as_of = %s order by 1",
            (JAN,),
        ).fetchall()
    stored = {user: (contract, net) for user, contract, net in conn_values}
    # Every spelling lands as the canonical (Telco) one.
    assert stored == {
        "u1": ("Month-to-month", "DSL"),
        "u2": ("Month-to-month", "DSL"),
        "u7": ("One year", "Fiber optic"),
    }
    assert usage_rows == 3
    assert feb_after == feb_before  # the other month is exactly as it was
    assert feb_before["users"][0] == 2


def test_failed_load_leaves_the_month_untouched(tmp_path, database_url):
    landing = tmp_path / "landing"
    write_month(landing, JAN, clean_month())
    assert materialize(tmp_path, database_url, JAN).success
    with psycopg.connect(database_url, autocommit=True) as conn:
        before = raw_checksums(conn)
        # A rule the database enforces and the landing contract does not: the COPY of the
        # last table fails after the first tables of the month were already replaced.
        conn.execute(
            "alter table raw.support_agg_90d add constraint few_tickets "
            "check (support_tickets_90d < 5)"
        )
    month = clean_month(("u1", "u2", "u9"))
    month["support_agg_90d"] = ["u1,1,2.0", "u2,7,2.0", "u9,1,1.0"]
    write_month(landing, JAN, month)
    result = materialize(tmp_path, database_url, JAN, raise_on_error=False)
    assert not result.success
    with psycopg.connect(database_url) as conn:
        assert raw_checksums(conn) == before


def test_missing_required_file_names_file_and_folder(tmp_path, database_url):
    folder = write_month(tmp_path / "landing", JAN, clean_month())
    (folder / "payments_agg_90d.csv").unlink()
    result = materialize(tmp_path, database_url, JAN, raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    error, message = failure.step_failure_data.error, ""
    while error is not None:  # Dagster wraps the asset's own exception as the cause
        message, error = message + error.message, error.cause
    assert "payments_agg_90d.csv" in message and str(folder) in message


def step_error_text(result) -> str:
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    error, message = failure.step_failure_data.error, ""
    while error is not None:
        message, error = message + error.message, error.cause
    return message


@pytest.mark.parametrize(
    ("damage", "named"),
    [
        ("empty", ["users.csv is empty"]),
        ("header_only", ["users.csv has a header but no data rows"]),
        ("no_column", ["subscriptions.csv, line 1: the header has no column net_service"]),
    ],
)
def test_unloadable_file_refuses_the_month_before_anything_loads(
    tmp_path, database_url, damage, named
):
    landing = tmp_path / "landing"
    write_month(landing, JAN, clean_month())
    assert materialize(tmp_path, database_url, JAN).success
    month = clean_month(("u1", "u2", "u3", "u4"))
    folder = write_month(landing, JAN, month)
    if damage == "empty":
        (folder / "users.csv").write_text("")
    elif damage == "header_only":
        write_month(landing, JAN, {"users": []})
    else:
        header = [c for c in TABLES_BY_NAME["subscriptions"].column_names if c != "net_service"]
        rows = [",".join(["u1", "3", "true", "false", "One year", "true", "9", "9"] + ["no"] * 4)]
        (folder / "subscriptions.csv").write_text(",".join(header) + "\n" + rows[0] + "\n")
    with psycopg.connect(database_url) as conn:
        before = raw_checksums(conn)
    result = materialize(tmp_path, database_url, JAN, raise_on_error=False)
    assert not result.success
    message = step_error_text(result)
    assert f"{JAN} refused, nothing of it loaded" in message
    for text in named:
        assert text in message
    with psycopg.connect(database_url) as conn:
        assert raw_checksums(conn) == before  # not one raw table of the month changed


def test_missing_labels_is_reported_not_failed(tmp_path, database_url):
    month = clean_month()
    del month["labels"]
    write_month(tmp_path / "landing", JAN, month)
    result = materialize(tmp_path, database_url, JAN)
    assert result.success
    labels = next(
        m
        for m in result.asset_materializations_for_node("landing_ingestion")
        if m.asset_key.to_user_string() == "raw_labels"
    )
    assert labels.metadata["landed"].value is False
    assert check_results(result)[("raw_labels", "reject_rate")].passed
