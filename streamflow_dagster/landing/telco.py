"""The IBM Telco customer churn table as StreamFlow landing months, in Telco's own spellings.

    streamflow import-telco ../shared/data/telco_customer_churn.csv --months 2 \
        --as-of 2024-01-31 --out "$STREAMFLOW_LANDING_DIR"

Telco's columns map onto users.csv, subscriptions.csv and labels.csv one to one (below), and
its categorical values land as Telco spells them (`Month-to-month`, `Fiber optic`, `No`,
`Female`): the landing contract accepts that spelling and the platform serves it back. Yes/No
flags stay Yes/No (Telco's "No internet service" is a No).

Telco is one snapshot with one churn column, so the first month is the table as it is, with
its labels; every later month is the same customers one month older (tenure + 1, one more
monthly fee paid) without the churners of the first month, who left, and without labels (the
month after the snapshot is unknown).

Telco has no usage, payment-failure or support data, so usage_agg_30d.csv, payments_agg_90d.csv
and support_agg_90d.csv get the same neutral value for every customer (NEUTRAL_AGGREGATES):
those features then carry no information, a model's AUC comes only from Telco's own
columns, and comparing it with a model trained directly on the CSV is fair. (Deriving them
from PaymentMethod or TechSupport would hand the model columns the comparison lacks.)
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from ..lib.as_of import month_end, validate_as_of
from .completeness import write_manifest
from .contract import TABLES_BY_NAME

YES = "Yes"
CHURNED = "Yes"
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


# The Telco columns the importer reads.
TELCO_COLUMNS = (
    "customerID",
    "gender",
    "SeniorCitizen",
    "Partner",
    "Dependents",
    "tenure",
    "InternetService",
    "OnlineSecurity",
    "OnlineBackup",
    "DeviceProtection",
    "TechSupport",
    "StreamingTV",
    "StreamingMovies",
    "Contract",
    "PaperlessBilling",
    "MonthlyCharges",
    "TotalCharges",
    "Churn",
)


def _flag(values: pd.Series) -> pd.Series:
    """Yes -> Yes; No, "No internet service" and "No phone service" -> No."""
    return np.where(values == YES, "Yes", "No")


def _signup_dates(tenure: pd.Series, as_of: date) -> pd.Series:
    """The first day of the month `tenure` months before AS_OF (Telco has months only)."""
    index = as_of.year * 12 + as_of.month - 1 - tenure.to_numpy()
    return pd.Series([f"{i // 12:04d}-{i % 12 + 1:02d}-01" for i in index], index=tenure.index)


def _money(values: pd.Series) -> pd.Series:
    return values.map("{:.2f}".format)


def telco_tables(
    telco: pd.DataFrame, as_of: date, with_labels: bool = True
) -> dict[str, pd.DataFrame]:
    """The landing tables of one month, as text columns in contract order."""
    missing = [c for c in TELCO_COLUMNS if c not in telco.columns]
    if missing:
        raise ValueError(f"the Telco CSV has no column(s) {', '.join(missing)}")
    ids = telco["customerID"].astype(str)
    tables = {
        "users": {
            "user_id": ids,
            "signup_date": _signup_dates(telco["tenure"], as_of),
            "user_gender": telco["gender"],
            "user_is_senior": np.where(telco["SeniorCitizen"] == 1, "Yes", "No"),
            "has_family": _flag(telco["Partner"]),
            "has_dependents": _flag(telco["Dependents"]),
        },
        "subscriptions": {
            "user_id": ids,
            "months_active": telco["tenure"].astype(str),
            "plan_stream_tv": _flag(telco["StreamingTV"]),
            "plan_stream_movies": _flag(telco["StreamingMovies"]),
            "contract_type": telco["Contract"],
            "paperless_billing": _flag(telco["PaperlessBilling"]),
            "monthly_fee": _money(telco["MonthlyCharges"]),
            "total_paid": telco["TotalCharges"].astype(str).str.strip(),  # blank for tenure 0
            "net_service": telco["InternetService"],
            "add_on_security": _flag(telco["OnlineSecurity"]),
            "add_on_backup": _flag(telco["OnlineBackup"]),
            "add_on_device_protect": _flag(telco["DeviceProtection"]),
            "add_on_support": _flag(telco["TechSupport"]),
        },
    }
    if with_labels:
        tables["labels"] = {"user_id": ids, "churn_label": telco["Churn"]}
    for name, constants in NEUTRAL_AGGREGATES.items():
        tables[name] = {"user_id": ids, **{column: constants[column] for column in constants}}
    frames = {}
    for name, columns in tables.items():
        frame = pd.DataFrame(columns)
        frames[name] = frame[TABLES_BY_NAME[name].column_names]
    return frames


def months_later(telco: pd.DataFrame, months: int) -> pd.DataFrame:
    """The customers `months` after the snapshot: churners gone, tenure and payments grown."""
    stayed = telco[telco["Churn"] != CHURNED].copy()
    stayed["tenure"] = stayed["tenure"] + months
    paid = pd.to_numeric(stayed["TotalCharges"].astype(str).str.strip(), errors="coerce")
    paid = paid.fillna(0.0) + months * stayed["MonthlyCharges"]
    stayed["TotalCharges"] = _money(paid)
    return stayed


def month_ends(first: date, count: int) -> list[date]:
    ends, index = [], first.year * 12 + first.month - 1
    for step in range(count):
        year, month0 = divmod(index + step, 12)
        ends.append(month_end(date(year, month0 + 1, 1)))
    return ends


def write_telco_months(csv_path: Path, first_as_of: str, months: int, out_dir: Path) -> list[Path]:
    """Write <out_dir>/<AS_OF>/*.csv for `months` months from the Telco CSV; their folders."""
    first = validate_as_of(first_as_of)
    telco = pd.read_csv(csv_path, dtype={"TotalCharges": str})
    folders = []
    for step, as_of in enumerate(month_ends(first, months)):
        customers = telco if step == 0 else months_later(telco, step)
        folder = out_dir / as_of.isoformat()
        folder.mkdir(parents=True, exist_ok=True)
        for name, frame in telco_tables(customers, as_of, with_labels=step == 0).items():
            frame.to_csv(folder / TABLES_BY_NAME[name].file, index=False)
        write_manifest(folder)  # last: the month is complete for readers only now
        folders.append(folder)
    return folders


def write_telco_month(csv_path: Path, as_of: str, out_dir: Path) -> Path:
    """Write <out_dir>/<as_of>/*.csv, the table as it is (with labels); returns the folder."""
    return write_telco_months(csv_path, as_of, 1, out_dir)[0]
