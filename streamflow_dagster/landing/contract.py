"""The landing contract: which files a month holds, their columns, types and rules.

Pure data, no I/O. DESIGN.md "Landing contract" is the source of these names; the raw
tables in PostgreSQL (schema `raw`) mirror them column for column, plus `as_of`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Kind(StrEnum):
    TEXT = "text"
    DATE = "date"
    BOOL = "boolean"
    INT = "bigint"
    NUM = "double precision"


@dataclass(frozen=True)
class Column:
    name: str
    kind: Kind
    nullable: bool = False
    non_negative: bool = False
    accepted: tuple[str, ...] = ()  # accepted values (lower case), for categorical text


@dataclass(frozen=True)
class LandingTable:
    name: str  # raw table name, e.g. "users"
    file: str  # landing file name, e.g. "users.csv"
    columns: tuple[Column, ...]
    required: bool = True  # labels arrive late: a missing labels.csv is normal
    description: str = ""
    key: tuple[str, ...] = field(default=("user_id",))

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def asset_name(self) -> str:
        return f"raw_{self.name}"


USER_ID = Column("user_id", Kind.TEXT)

CONTRACT_TYPES = ("month_to_month", "one_year", "two_year")
NET_SERVICES = ("dsl", "fiber_optic", "none")
GENDERS = ("female", "male", "other")

LANDING_TABLES: tuple[LandingTable, ...] = (
    LandingTable(
        "users",
        "users.csv",
        (
            USER_ID,
            Column("signup_date", Kind.DATE),
            Column("user_gender", Kind.TEXT, accepted=GENDERS),
            Column("user_is_senior", Kind.BOOL),
            Column("has_family", Kind.BOOL),
            Column("has_dependents", Kind.BOOL),
        ),
        description="One row per user known at AS_OF: demographics.",
    ),
    LandingTable(
        "subscriptions",
        "subscriptions.csv",
        (
            USER_ID,
            Column("months_active", Kind.INT, non_negative=True),
            Column("plan_stream_tv", Kind.BOOL),
            Column("plan_stream_movies", Kind.BOOL),
            Column("contract_type", Kind.TEXT, accepted=CONTRACT_TYPES),
            Column("paperless_billing", Kind.BOOL),
            Column("monthly_fee", Kind.NUM, non_negative=True),
            # Blank for users in their first month: nothing has been paid yet.
            Column("total_paid", Kind.NUM, nullable=True, non_negative=True),
            Column("net_service", Kind.TEXT, accepted=NET_SERVICES),
            Column("add_on_security", Kind.BOOL),
            Column("add_on_backup", Kind.BOOL),
            Column("add_on_device_protect", Kind.BOOL),
            Column("add_on_support", Kind.BOOL),
        ),
        description="One row per active subscription at AS_OF: plan, contract, billing.",
    ),
    LandingTable(
        "usage_agg_30d",
        "usage_agg_30d.csv",
        (
            USER_ID,
            Column("watch_hours_30d", Kind.NUM, non_negative=True),
            Column("avg_session_mins_7d", Kind.NUM, non_negative=True),
            Column("unique_devices_30d", Kind.INT, non_negative=True),
            Column("skips_7d", Kind.INT, non_negative=True),
            Column("rebuffer_events_7d", Kind.INT, non_negative=True),
        ),
        description="One row per user: viewing aggregates over the 30 (and 7) days to AS_OF.",
    ),
    LandingTable(
        "payments_agg_90d",
        "payments_agg_90d.csv",
        (USER_ID, Column("failed_payments_90d", Kind.INT, non_negative=True)),
        description="One row per user: failed payments in the 90 days to AS_OF.",
    ),
    LandingTable(
        "support_agg_90d",
        "support_agg_90d.csv",
        (
            USER_ID,
            Column("support_tickets_90d", Kind.INT, non_negative=True),
            Column("ticket_avg_resolution_hrs_90d", Kind.NUM, non_negative=True),
        ),
        description="One row per user: support tickets in the 90 days to AS_OF.",
    ),
    LandingTable(
        "labels",
        "labels.csv",
        (USER_ID, Column("churn_label", Kind.BOOL)),
        required=False,
        description="One row per user: did the user churn in the month after AS_OF (late).",
    ),
)

TABLES_BY_NAME = {t.name: t for t in LANDING_TABLES}

RAW_SCHEMA = "raw"
QUARANTINE_TABLE = "quarantine"

TRUE_WORDS = frozenset({"true", "yes", "1", "t", "y"})
FALSE_WORDS = frozenset({"false", "no", "0", "f", "n"})


def raw_table_ddl(table: LandingTable) -> str:
    """CREATE TABLE statement of a raw table (identifiers are constants of this module)."""
    cols = ",\n    ".join(
        f"{c.name} {c.kind.value}{'' if c.nullable else ' not null'}" for c in table.columns
    )
    return (
        f"create table if not exists {RAW_SCHEMA}.{table.name} (\n"
        f"    as_of date not null,\n    {cols},\n"
        f"    primary key (as_of, {', '.join(table.key)})\n)"
    )


QUARANTINE_DDL = f"""
create table if not exists {RAW_SCHEMA}.{QUARANTINE_TABLE} (
    table_name text not null,
    as_of date not null,
    line_number bigint,
    raw_record text,
    reason text not null,
    loaded_at timestamptz not null default now()
)
"""
