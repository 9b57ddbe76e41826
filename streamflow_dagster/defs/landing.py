"""Landing ingestion: the month's files, validated, into schema `raw` (one transaction)."""

import dagster as dg

from ..landing.checks import (
    MAX_REJECT_RATE,
    MAX_ROW_COUNT_CHANGE,
    reject_rate_check,
    row_count_change_check,
    schema_check,
)
from ..landing.completeness import LandingNotReady, read_when_complete
from ..landing.contract import LANDING_TABLES, RAW_SCHEMA
from ..landing.load import load_month, parse_month
from ..platform.db import readable_failures
from ..platform.settings import landing_settle_seconds
from .checks import to_check_result
from .partitions import AS_OF_PARTITIONS, partition_months
from .ranges import materialize_months
from .resources import LandingResource, WarehouseResource

REJECT_RATE_CHECK = "reject_rate"
ROW_COUNT_CHANGE_CHECK = "row_count_change"
SCHEMA_CHECK = "schema"
LANDING_GROUP = "landing"


class IngestionConfig(dg.Config):
    max_reject_rate: float = MAX_REJECT_RATE
    max_row_count_change: float = MAX_ROW_COUNT_CHANGE


RAW_SPECS = [
    dg.AssetSpec(
        t.asset_name,
        description=f"raw.{t.name}: {t.description} Validated copy of {t.file}.",
        group_name=LANDING_GROUP,
        kinds={"postgres", "csv"},
        metadata={"table": f"{RAW_SCHEMA}.{t.name}", "landing_file": t.file},
        # A missing labels.csv is normal; the asset still records that it has not landed.
    )
    for t in LANDING_TABLES
]

CHECK_SPECS = [
    spec
    for t in LANDING_TABLES
    for spec in (
        dg.AssetCheckSpec(
            REJECT_RATE_CHECK,
            asset=t.asset_name,
            blocking=True,
            description="Share of the file's rows rejected into raw.quarantine.",
            partitions_def=AS_OF_PARTITIONS,
        ),
        dg.AssetCheckSpec(
            ROW_COUNT_CHANGE_CHECK,
            asset=t.asset_name,
            description="Rows loaded vs the previous month.",
            partitions_def=AS_OF_PARTITIONS,
        ),
        dg.AssetCheckSpec(
            SCHEMA_CHECK,
            asset=t.asset_name,
            blocking=True,
            description="Header has every contract column (extra ones warn).",
            partitions_def=AS_OF_PARTITIONS,
        ),
    )
]


@dg.multi_asset(
    name="landing_ingestion",
    specs=RAW_SPECS,
    check_specs=CHECK_SPECS,
    partitions_def=AS_OF_PARTITIONS,
    backfill_policy=dg.BackfillPolicy.single_run(),
)
def landing_ingestion(
    context: dg.AssetExecutionContext,
    config: IngestionConfig,
    warehouse: WarehouseResource,
    landing: LandingResource,
):
    """Validate the month's landing files and replace the month in schema raw atomically."""
    require_landed(landing, partition_months(context))
    yield from materialize_months(
        context, lambda as_of: _ingest_month(context, config, warehouse, landing, as_of)
    )


def require_landed(landing: LandingResource, months: list[str]) -> None:
    """Every month of the step has its landing folder; else fail before loading any."""
    missing = [m for m in months if not (landing.folder / m).is_dir()]
    if missing:
        raise dg.Failure(
            description=f"{len(missing)} month(s) of this run have not landed: "
            f"{', '.join(missing)} (no folder {landing.folder / missing[0]}). Land the month's "
            "files there, or run only months that landed (`streamflow run --months A..B`).",
            metadata={"missing_months": missing, "landing_folder": str(landing.folder)},
        )


def _ingest_month(context, config, warehouse, landing, as_of: str):
    context.log.info(f"Validating landing files of {as_of} in {landing.folder / as_of}")
    parsed, fingerprint = _read_complete_month(context, landing, as_of)
    with readable_failures(warehouse.url()), warehouse.connect() as conn:
        loads = load_month(conn, as_of, parsed)  # one transaction: all of the month or none

    # A blocking failure (reject rate, schema) leaves that table's month unmaterialized, red
    # (materialize_months, defs/ranges.py).
    return [
        _table_result(context, config, landing, as_of, table, loads[table.name], fingerprint)
        for table in LANDING_TABLES
    ]


def _table_result(context, config, landing, as_of, table, load, fingerprint):
    """One raw table's materialization of the month, with its three checks."""
    if not load.landed:
        context.log.warning(f"{table.file} for {as_of} has not landed yet (labels arrive late)")
    elif load.rows_rejected:
        context.log.warning(
            f"{table.file}: {load.rows_rejected} of {load.rows_read} rows quarantined"
        )
    if load.extra_columns:
        context.log.warning(f"{table.file}: extra column(s) ignored: {load.extra_columns}")
    return dg.MaterializeResult(
        asset_key=table.asset_name,
        metadata={
            "as_of": as_of,
            "landed": load.landed,
            "dagster/row_count": load.rows_loaded,
            "rows_read": load.rows_read,
            "rows_rejected": load.rows_rejected,
            "reject_rate": round(load.reject_rate, 6),
            "source_file": str(landing.folder / as_of / table.file),
            "landing_fingerprint": fingerprint,
        },
        check_results=[
            to_check_result(
                REJECT_RATE_CHECK,
                reject_rate_check(load, config.max_reject_rate),
                asset=table.asset_name,
            ),
            to_check_result(
                ROW_COUNT_CHANGE_CHECK,
                row_count_change_check(load, config.max_row_count_change),
                asset=table.asset_name,
            ),
            to_check_result(SCHEMA_CHECK, schema_check(load), asset=table.asset_name),
        ],
    )


def _read_complete_month(context, landing: LandingResource, as_of: str):
    """The parsed month, read only once it is complete by the README's landing rule."""
    folder = landing.folder / as_of
    if not folder.is_dir():
        return parse_month(landing.folder, as_of), ""  # raises, naming the folder expected
    try:
        check, parsed = read_when_complete(
            folder,
            landing_settle_seconds(),
            lambda: parse_month(landing.folder, as_of),
            on_wait=lambda c: context.log.info(f"waiting for the landing month: {c.describe()}"),
        )
    except LandingNotReady as err:
        raise dg.Failure(description=str(err), metadata={"landing_folder": str(folder)}) from None
    return parsed, check.fingerprint
