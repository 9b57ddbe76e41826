"""The Telco importer: its months, in Telco's spellings, pass the contract; usage etc. neutral."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from streamflow_dagster.landing.completeness import check_month
from streamflow_dagster.landing.load import parse_month
from streamflow_dagster.landing.telco import (
    NEUTRAL_AGGREGATES,
    write_telco_month,
    write_telco_months,
)

TELCO_CSV = Path(__file__).resolve().parents[4] / "shared" / "data" / "telco_customer_churn.csv"
ROWS = """customerID,gender,SeniorCitizen,Partner,Dependents,tenure,PhoneService,MultipleLines,\
InternetService,OnlineSecurity,OnlineBackup,DeviceProtection,TechSupport,StreamingTV,\
StreamingMovies,Contract,PaperlessBilling,PaymentMethod,MonthlyCharges,TotalCharges,Churn
7590-VHVEG,Female,0,Yes,No,1,No,No phone service,DSL,No,Yes,No,No,No,No,Month-to-month,Yes,\
Electronic check,29.85,29.85,No
4472-LVYGI,Female,0,Yes,Yes,0,No,No phone service,DSL,Yes,No,Yes,Yes,Yes,No,Two year,Yes,\
Bank transfer (automatic),52.55, ,No
3668-QPYBK,Male,1,No,No,2,Yes,No,Fiber optic,No,No,No,No,No internet service,Yes,One year,No,\
Mailed check,53.85,108.15,Yes
"""


def test_rows_map_onto_the_landing_contract(tmp_path):
    csv = tmp_path / "telco.csv"
    csv.write_text(ROWS)
    write_telco_month(csv, "2024-01-31", tmp_path / "landing")
    parsed = parse_month(tmp_path / "landing", "2024-01-31")
    assert {name: len(p.rejections) for name, p in parsed.items()} == dict.fromkeys(parsed, 0)
    subscriptions = parsed["subscriptions"].accepted.to_pandas()
    assert subscriptions["net_service"].tolist() == ["DSL", "DSL", "Fiber optic"]
    assert subscriptions["contract_type"].tolist() == ["Month-to-month", "Two year", "One year"]
    raw = pd.read_csv(tmp_path / "landing" / "2024-01-31" / "subscriptions.csv")
    assert raw["contract_type"].tolist() == ["Month-to-month", "Two year", "One year"]
    assert subscriptions["total_paid"].isna().tolist() == [False, True, False]
    assert subscriptions["plan_stream_tv"].tolist() == [False, True, False]
    users = parsed["users"].accepted.to_pandas()
    assert users["signup_date"].astype(str).tolist() == ["2023-12-01", "2024-01-01", "2023-11-01"]
    assert parsed["labels"].accepted.to_pandas()["churn_label"].tolist() == [False, False, True]
    usage = parsed["usage_agg_30d"].accepted.to_pandas()
    assert usage["watch_hours_30d"].nunique() == 1
    assert set(NEUTRAL_AGGREGATES) == {"usage_agg_30d", "payments_agg_90d", "support_agg_90d"}
    # The manifest is written last: the month is complete at once, with no settle time.
    check = check_month(tmp_path / "landing" / "2024-01-31", settle_seconds=3600)
    assert check.complete, check.reasons


@pytest.mark.skipif(not TELCO_CSV.exists(), reason="the shared Telco CSV is not here")
def test_the_whole_telco_table_lands_without_rejections(tmp_path):
    write_telco_month(TELCO_CSV, "2024-01-31", tmp_path)
    parsed = parse_month(tmp_path, "2024-01-31")
    assert {p.accepted.num_rows for p in parsed.values()} == {len(pd.read_csv(TELCO_CSV))}
    assert sum(len(p.rejections) for p in parsed.values()) == 0


def test_later_months_lose_the_churners_age_a_month_and_have_no_labels(tmp_path):
    csv = tmp_path / "telco.csv"
    csv.write_text(ROWS)
    folders = write_telco_months(csv, "2024-01-31", 3, tmp_path / "landing")
    assert [f.name for f in folders] == ["2024-01-31", "2024-02-29", "2024-03-31"]
    assert not (folders[1] / "labels.csv").exists() and not (folders[2] / "labels.csv").exists()
    march = parse_month(tmp_path / "landing", "2024-03-31")
    assert march["labels"] is None
    assert sum(len(p.rejections) for p in march.values() if p) == 0
    subscriptions = march["subscriptions"].accepted.to_pandas()
    assert subscriptions["user_id"].tolist() == ["7590-VHVEG", "4472-LVYGI"]  # 3668 churned
    assert subscriptions["months_active"].tolist() == [3, 2]
    assert subscriptions["total_paid"].tolist() == pytest.approx([29.85 + 2 * 29.85, 2 * 52.55])
    users = march["users"].accepted.to_pandas()  # signed up when they did, whatever the month
    assert users["signup_date"].astype(str).tolist() == ["2023-12-01", "2024-01-01"]
