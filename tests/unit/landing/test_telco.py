"""The optional Telco importer: its landing files pass the contract, usage etc. are neutral."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from streamflow_dagster.landing.completeness import check_month
from streamflow_dagster.landing.load import parse_month
from streamflow_dagster.landing.telco import NEUTRAL_AGGREGATES, write_telco_month

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
    assert subscriptions["net_service"].tolist() == ["dsl", "dsl", "fiber_optic"]
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
