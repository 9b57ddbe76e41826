"""The README's UI tour in a real browser: lineage, months, a failed check, the dbt docs,
the online API's /docs with no route to the internet.

Headless Debian chromium driven by Playwright against the local deployment's webserver
(`streamflow deploy start --ui`, as `make dev` runs it) and `streamflow docs`
on a small real state (two good months, one month that fails its landing checks).
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import psycopg
import pytest

from tests.e2e.conftest import BAD_MONTH, GOOD_MONTHS, streamflow

pytestmark = pytest.mark.e2e

# The deployment's code server serves the definitions as the location "streamflow".
LOCATION = "streamflow"
GROUPS = ["landing", "staging", "marts", "features", "models"]


def shown(page, text: str):
    """The visible element with exactly `text` (the UI keeps hidden copies to measure text)."""
    return page.get_by_text(text, exact=True).filter(visible=True).first


def test_asset_graph_shows_the_whole_lineage(dagster_ui, page, screenshot):
    page.goto(f"{dagster_ui}/asset-groups")
    for group in GROUPS:  # collapsed at first: one box per group
        shown(page, group).wait_for()
    page.locator("button:has(div[aria-label=settings])").last.click()  # the graph's settings
    page.get_by_role("menuitem", name="Expand all groups").click()
    # Only nodes inside the viewport are drawn; these are, at the first zoom level. Long names
    # are shortened on the nodes (raw_suppo…_agg_90d), the short ones read in full.
    for asset in ["production_model", "churn_model", "training_set", "online_features"]:
        shown(page, asset).wait_for()
    for asset in ["raw_users", "raw_subscriptions", "raw_labels", "stg_users", "churn_labels"]:
        shown(page, asset).wait_for()
    # Room for the whole graph: hide the group list and the navigation, zoom out two steps.
    page.keyboard.press("Escape")  # close the settings menu
    page.locator("button:has(div[aria-label=panel_show_right])").last.click()
    page.get_by_role("button", name="Hide navigation").click()
    for _ in range(2):
        page.locator("button:has(div[aria-label=zoom_out])").click()
    page.wait_for_timeout(1500)  # the zoom animates
    for asset in ["production_model", "feast_registry", "raw_users"]:
        shown(page, asset).wait_for()
    screenshot(page, "asset-graph.png")


def test_partitions_view_shows_the_months(dagster_ui, page, screenshot):
    page.goto(f"{dagster_ui}/assets/churn_model?view=partitions")
    for month in [*GOOD_MONTHS, BAD_MONTH]:
        shown(page, month).wait_for()
    # The bad month stopped at its landing checks, so its churn_model partition failed.
    page.get_by_text("Failed (1)").wait_for()
    page.get_by_text("Materialized (2)").wait_for()
    # The month list on the left (the same text also sits in the selection chips above).
    page.get_by_text(GOOD_MONTHS[-1], exact=True).filter(visible=True).last.click()
    shown(page, "auc").wait_for()  # the month's model metadata: AUC, version, MLflow run
    shown(page, "model_version").wait_for()
    screenshot(page, "partitions.png")


def test_failed_check_page_says_what_failed(dagster_ui, page, screenshot):
    page.goto(f"{dagster_ui}/assets/raw_subscriptions?view=checks&checkDetail=reject_rate")
    page.get_by_text("This is a blocking asset check").wait_for()
    # The latest evaluation is the bad month's: failed, with counts and the threshold.
    for key in ["rows_rejected", "sample_reasons", "threshold"]:
        page.get_by_role("cell", name=key, exact=True).wait_for()
    page.get_by_text("is negative").first.wait_for()
    shown(page, "Failed").wait_for()
    screenshot(page, "failed-check.png")


def test_alert_of_the_failed_check(dagster_ui, ui_state, page, screenshot):
    """The deployment's alert_sensor turned the CLI's failed check into an alert: the tick
    that raised it shows so in its cursor ({"alerts_raised": 2, ...}), its logs hold it."""
    page.goto(f"{dagster_ui}/locations/{LOCATION}/sensors/alert_sensor")
    expected = f"Check raw_subscriptions / reject_rate failed for {BAD_MONTH}"
    # The sensor ticked all along the CLI's runs; one tick raised the check's alert and the
    # run's, the others none ("alerts_raised": 0).
    raised = page.get_by_role("row").filter(has_text=re.compile(r'"alerts_raised": [1-9]'))
    raised.first.wait_for(timeout=180_000)
    assert raised.count() == 1
    raised.get_by_role("button", name="View logs").click()
    page.get_by_text(expected).first.wait_for()
    page.wait_for_timeout(1000)  # the log dialog fades in
    screenshot(page, "alert.png")
    with psycopg.connect(streamflow(ui_state, "db", "url").stdout.strip()) as conn:
        rows = conn.execute(
            "select severity, message from ops.alerts "
            "where asset = 'raw_subscriptions' and check_name = 'reject_rate' and partition = %s",
            (BAD_MONTH,),
        ).fetchall()
    assert [(severity, expected in message) for severity, message in rows] == [("ERROR", True)]


def test_dbt_docs_show_a_marts_columns(dbt_docs, page, screenshot):
    page.goto(f"{dbt_docs}#!/model/model.streamflow.subscriptions_profile_snapshots")
    page.get_by_role("heading", name="subscriptions_profile_snapshots").first.wait_for()
    for column in ["user_id", "as_of", "monthly_fee", "net_service", "contract_type"]:
        page.get_by_text(column, exact=True).first.wait_for()
    screenshot(page, "dbt-docs.png")


def test_api_docs_work_without_internet(online_api, page, screenshot):
    """/docs with every request off the loopback interface refused: nothing it needs is lost."""
    refused = []

    def loopback_only(route):
        host = urlsplit(route.request.url).hostname
        if host in ("127.0.0.1", "localhost"):
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort("internetdisconnected")

    page.route("**/*", loopback_only)
    page.goto(f"{online_api}/docs")
    page.get_by_role("heading", name="StreamFlow online API").first.wait_for()
    for path in ["/ready", "/features/{user_id}", "/predict/{user_id}", "/predict"]:
        page.locator(".opblock-summary-path", has_text=path).first.wait_for()
    assert page.locator(".opblock").count() >= 7  # every documented operation listed
    assert refused == []
    screenshot(page, "api-docs.png")
