"""The IBM Telco customer churn table as one month of StreamFlow landing files.

    python -m streamflow_dagster.landing.telco ../shared/data/telco_customer_churn.csv \
        --as-of 2024-01-31 --out "$STREAMFLOW_LANDING_DIR"

Telco's columns map onto users.csv, subscriptions.csv and labels.csv one to one (below).
It has no usage, payment-failure or support data, so usage_agg_30d.csv, payments_agg_90d.csv
and support_agg_90d.csv get the same neutral value for every customer (NEUTRAL_AGGREGATES):
those features then carry no information, a model's AUC comes only from Telco's own
columns, and comparing it with a model trained directly on the CSV is fair. (Deriving them
from PaymentMethod or TechSupport would hand the model columns the comparison lacks.)
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import click
import numpy as np
import pandas as pd

from ..defs.partitions import validate_as_of
from .completeness import write_manifest
from .contract import TABLES_BY_NAME

YES = "Yes"
NET_SERVICE = {"DSL": "dsl", "Fiber optic": "fiber_optic", "No": "none"}
CONTRACT = {"Month-to-month": "month_to_month", "One year": "one_year", "Two year": "two_year"}
# Typical values of the demo data, the same for every customer (see the module docstring).
NEUTRAL_AGGREGATES = {
    "usage_agg_30d": {
        "watch_hours_30d": "18.0",
        "avg_session_mins_7d": "27.0",
        "unique_devices_30d": "2",
        "skips_7d": "4",
        "rebuffer_events_7d": "1",
    },
    "payments_agg_90d": {"failed_payments_90d": "0"},
    "support_agg_90d": {"support_tickets_90d": "0", "ticket_avg_resolution_hrs_90d": "0.0"},
}
# The Telco columns behind the 14 model features (the rest are constants, above).
FEATURE_SOURCE_COLUMNS = {
    "net_service": "InternetService",
    "paperless_billing": "PaperlessBilling",
    "plan_stream_movies": "StreamingMovies",
    "plan_stream_tv": "StreamingTV",
    "months_active": "tenure",
    "monthly_fee": "MonthlyCharges",
}


def _flag(values: pd.Series) -> pd.Series:
    """Yes -> true; No and "No internet service" -> false."""
    return np.where(values == YES, "true", "false")


def _signup_dates(tenure: pd.Series, as_of: date) -> pd.Series:
    """The first day of the month `tenure` months before AS_OF (Telco has months only)."""
    index = as_of.year * 12 + as_of.month - 1 - tenure.to_numpy()
    return pd.Series([f"{i // 12:04d}-{i % 12 + 1:02d}-01" for i in index], index=tenure.index)


def telco_tables(telco: pd.DataFrame, as_of: date) -> dict[str, pd.DataFrame]:
    """The landing tables of one month, as text columns in contract order."""
    unknown = set(telco["InternetService"]) - NET_SERVICE.keys()
    if unknown:
        raise ValueError(f"Unknown InternetService value(s) {sorted(unknown)}")
    ids = telco["customerID"].astype(str)
    total_paid = telco["TotalCharges"].astype(str).str.strip()  # blank for tenure 0
    tables = {
        "users": {
            "user_id": ids,
            "signup_date": _signup_dates(telco["tenure"], as_of),
            "user_gender": telco["gender"].str.lower(),
            "user_is_senior": np.where(telco["SeniorCitizen"] == 1, "true", "false"),
            "has_family": _flag(telco["Partner"]),
            "has_dependents": _flag(telco["Dependents"]),
        },
        "subscriptions": {
            "user_id": ids,
            "months_active": telco["tenure"].astype(str),
            "plan_stream_tv": _flag(telco["StreamingTV"]),
            "plan_stream_movies": _flag(telco["StreamingMovies"]),
            "contract_type": telco["Contract"].map(CONTRACT),
            "paperless_billing": _flag(telco["PaperlessBilling"]),
            "monthly_fee": telco["MonthlyCharges"].map("{:.2f}".format),
            "total_paid": total_paid,
            "net_service": telco["InternetService"].map(NET_SERVICE),
            "add_on_security": _flag(telco["OnlineSecurity"]),
            "add_on_backup": _flag(telco["OnlineBackup"]),
            "add_on_device_protect": _flag(telco["DeviceProtection"]),
            "add_on_support": _flag(telco["TechSupport"]),
        },
        "labels": {"user_id": ids, "churn_label": _flag(telco["Churn"])},
    }
    for name, constants in NEUTRAL_AGGREGATES.items():
        tables[name] = {"user_id": ids, **{column: constants[column] for column in constants}}
    frames = {}
    for name, columns in tables.items():
        frame = pd.DataFrame(columns)
        frames[name] = frame[TABLES_BY_NAME[name].column_names]
    return frames


def write_telco_month(csv_path: Path, as_of: str, out_dir: Path) -> Path:
    """Write <out_dir>/<as_of>/*.csv from the Telco CSV; returns the month's folder."""
    month = validate_as_of(as_of)
    telco = pd.read_csv(csv_path, dtype={"TotalCharges": str})
    folder = out_dir / as_of
    folder.mkdir(parents=True, exist_ok=True)
    for name, frame in telco_tables(telco, month).items():
        frame.to_csv(folder / TABLES_BY_NAME[name].file, index=False)
    write_manifest(folder)  # last: the month is complete for readers only now
    return folder


@click.command("import-telco")
@click.argument("csv_path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--as-of", default="2024-01-31", show_default=True, help="The month's AS_OF.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True)
def import_telco(csv_path: Path, as_of: str, out: Path) -> None:
    """Map the Telco churn CSV onto one month of landing files (usage etc. neutral)."""
    try:
        folder = write_telco_month(csv_path, as_of, out)
    except ValueError as err:
        raise click.BadParameter(str(err)) from None
    click.echo(f"Wrote {folder} (usage, payments and support are neutral constants)")


if __name__ == "__main__":
    import_telco()
