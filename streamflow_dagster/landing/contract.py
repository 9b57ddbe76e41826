"""The landing contract: which files a month holds, their columns, types and rules.

Pure data, no I/O. DESIGN.md "Landing contract" is the source of these names; the raw
tables in PostgreSQL (schema `raw`) mirror them column for column, plus `as_of`.

Categorical values: one vocabulary, the real exports' spelling
-------------------------------------------------------------

The data comes from the IBM Telco churn table, and its spelling is the canonical one: raw,
staging, the marts, the Feast online store, the model's categories and the API's answers all
hold exactly these values (the seed's `/predict` example answers `"net_service": "DSL"`).
A landed value is matched after `spelling_key`: case, surrounding spaces, hyphens and
underscores are not significant, so `Month-to-month`, `month_to_month` and ` MONTH TO MONTH `
are the same value. Ingestion stores the canonical spelling; anything else is quarantined
with a reason that lists the accepted values.

    column          canonical (stored, served)             also accepted (after spelling_key)
    contract_type   Month-to-month, One year, Two year     -
    net_service     DSL, Fiber optic, No                   none, no internet service
    user_gender     Female, Male, Other                    -

(`none` was the canonical "no internet" value before the Telco spelling; it stays accepted.)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum


class Kind(StrEnum):
    TEXT = "text"
    DATE = "date"
    BOOL = "boolean"
    INT = "bigint"
    NUM = "double precision"


# Runs of spaces, hyphens and underscores: one separator, whichever is written.
SEPARATORS_PATTERN = r"[\s_-]+"
_SEPARATORS = re.compile(SEPARATORS_PATTERN)


def spelling_key(value: str) -> str:
    """What is significant in a categorical value: `' Month-to-month'` -> `month_to_month`."""
    return _SEPARATORS.sub("_", value.strip().lower()).strip("_")


@dataclass(frozen=True)
class Vocabulary:
    """A categorical column's values (the canonical spelling) and extra accepted spellings."""

    values: tuple[str, ...]  # canonical: what ingestion stores and the API answers
    synonyms: tuple[tuple[str, str], ...] = ()  # (other spelling, canonical value)

    @property
    def by_key(self) -> dict[str, str]:
        """spelling_key of every accepted spelling -> its canonical value."""
        keys = {spelling_key(v): v for v in self.values}
        keys.update({spelling_key(s): v for s, v in self.synonyms})
        return keys

    def canonical(self, value: str) -> str | None:
        return self.by_key.get(spelling_key(value))

    def describe(self) -> str:
        """The accepted values, as a rejection reason lists them."""
        text = ", ".join(self.values)
        if self.synonyms:
            text += f" (or {', '.join(s for s, _ in self.synonyms)})"
        return text


@dataclass(frozen=True)
class Column:
    name: str
    kind: Kind
    nullable: bool = False
    non_negative: bool = False
    vocabulary: Vocabulary | None = None  # categorical text: the accepted values


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

# The Telco export's spellings (see the module docstring).
CONTRACT_TYPE = Vocabulary(("Month-to-month", "One year", "Two year"))
NET_SERVICE = Vocabulary(
    ("DSL", "Fiber optic", "No"), synonyms=(("none", "No"), ("No internet service", "No"))
)
USER_GENDER = Vocabulary(("Female", "Male", "Other"))
CONTRACT_TYPES = CONTRACT_TYPE.values
NET_SERVICES = NET_SERVICE.values
GENDERS = USER_GENDER.values

LANDING_TABLES: tuple[LandingTable, ...] = (
    LandingTable(
        "users",
        "users.csv",
        (
            USER_ID,
            Column("signup_date", Kind.DATE),
            Column("user_gender", Kind.TEXT, vocabulary=USER_GENDER),
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
            Column("contract_type", Kind.TEXT, vocabulary=CONTRACT_TYPE),
            Column("paperless_billing", Kind.BOOL),
            Column("monthly_fee", Kind.NUM, non_negative=True),
            # Blank for users in their first month: nothing has been paid yet.
            Column("total_paid", Kind.NUM, nullable=True, non_negative=True),
            Column("net_service", Kind.TEXT, vocabulary=NET_SERVICE),
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
