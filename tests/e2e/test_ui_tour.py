"""The README's UI tour in a real browser: lineage, months, a failed check and its month in
red, a report and a model card opened in MLflow by their links, the dbt docs, the online API's
/docs with no route to the internet, and a backfill over a range of months picked in the
Dagster UI's dialog (last: it re-materializes the good months' landing tables).

Headless Debian chromium driven by Playwright against the local deployment's webserver
(`streamflow deploy start --ui`, as `make dev` runs it), `streamflow docs` and the MLflow UI
(`streamflow model ui`) on a small real state (two good months, one month that fails its
landing checks).
"""

from __future__ import annotations

import contextlib
import json
import re
import time
import urllib.request
from urllib.parse import urlsplit

import psycopg
import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from tests.e2e.conftest import BAD_MONTH, GOOD_MONTHS, streamflow

# The first test's timeout also counts the session fixtures' setup (the state's months, the
# deployment, the docs, the API, the MLflow UI): minutes alone, more than the suite's 600 s
# when it shares two cores with two other workers running whole months (seen under make test).
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(2400)]

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
    for asset in ["raw_users", "raw_subscriptions", "raw_labels", "churn_scores", "dbt_docs"]:
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
    # The bad month stopped at its landing checks, so its churn_model partition failed.
    page.get_by_text("Failed (1)").wait_for()
    page.get_by_text("Materialized (2)").wait_for()
    # Months are time windows up to today: untick Missing to list only the months that ran.
    page.get_by_text(re.compile(r"^Missing \(\d+\)$")).click()
    for month in [*GOOD_MONTHS, BAD_MONTH]:
        shown(page, month).wait_for()
    # The month list on the left (the same text also sits in the selection chips above).
    page.get_by_text(GOOD_MONTHS[-1], exact=True).filter(visible=True).last.click()
    shown(page, "auc").wait_for()  # the month's model metadata: AUC, version, MLflow run
    shown(page, "model_version").wait_for()
    screenshot(page, "partitions.png")


def test_failed_check_page_says_what_failed(dagster_ui, page, screenshot):
    page.goto(f"{dagster_ui}/assets/raw_subscriptions?view=checks&checkDetail=reject_rate")
    page.get_by_text("This is a blocking asset check").wait_for()
    # The check's months: the bad one failed, the good ones passed (the CLI ran them again
    # after the bad month stopped their range, so the latest evaluation is a good month's).
    page.locator("button[role=tab]", has_text="Partitions").click()
    page.get_by_text("Failed (1)").wait_for()
    passed = page.get_by_text(f"Passed ({len(GOOD_MONTHS)})")
    passed.wait_for()
    passed.click()  # untick Passed and Missing: only the failed month is listed
    page.get_by_text(re.compile(r"^Missing \(\d+\)$")).click()
    page.get_by_text(BAD_MONTH, exact=True).filter(visible=True).last.click()
    # Its evaluation: failed, with counts and the threshold.
    for key in ["rows_rejected", "sample_reasons", "threshold"]:
        page.get_by_role("cell", name=key, exact=True).wait_for()
    page.get_by_text("is negative").first.wait_for()
    shown(page, "Failed").wait_for()
    screenshot(page, "failed-check.png")


def test_failed_month_is_red_in_its_partitions(dagster_ui, page, screenshot):
    """The bad month is failed (red) in raw_subscriptions' partitions, the good months
    materialized."""
    page.goto(f"{dagster_ui}/assets/raw_subscriptions?view=partitions")
    page.get_by_text("Failed (1)").wait_for()
    materialized = page.get_by_text(f"Materialized ({len(GOOD_MONTHS)})")
    materialized.wait_for()
    # Untick every status but Failed: the month list holds the failed months only.
    materialized.click()
    page.get_by_text(re.compile(r"^Missing \(\d+\)$")).click()
    shown(page, BAD_MONTH).click()
    page.get_by_text("failed, and did not materialize this asset").wait_for()
    assert page.get_by_text(GOOD_MONTHS[-1], exact=True).filter(visible=True).count() == 0
    screenshot(page, "failed-month.png")


TICK_PAGES = 40  # pages of sensor ticks looked through for the one that raised the alerts


def test_alert_of_the_failed_check(dagster_ui, ui_state, page, screenshot):
    """The deployment's alert_sensor turned the CLI's failed check into an alert: the tick
    that raised it shows so in its cursor ({"alerts_raised": 2, ...}), its logs hold it."""
    page.goto(f"{dagster_ui}/locations/{LOCATION}/sensors/alert_sensor")
    expected = f"Check raw_subscriptions / reject_rate failed for {BAD_MONTH}"
    # The sensor ticked all along the CLI's runs; one tick raised the check's alert and the
    # run's, the others none ("alerts_raised": 0).
    raised = page.get_by_role("row").filter(has_text=re.compile(r'"alerts_raised": [1-9]'))
    # The table shows the latest ticks a page at a time: the raising tick is on the first
    # page, or about to be, unless the state's runs were slow (a loaded machine) and it is
    # some pages back by now (seen in the suite).
    with contextlib.suppress(PlaywrightTimeout):
        raised.first.wait_for(timeout=90_000)
    older = page.get_by_role("button", name="Older").first  # the ticks table's pager
    for _ in range(TICK_PAGES):
        if raised.count() or older.is_disabled():
            break
        older.click()
        page.wait_for_timeout(1000)
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


def opened_link(page, href_part: str):
    """Click the first visible link whose address holds `href_part`; the tab it opens."""
    link = page.locator(f"a[href*='{href_part}']").filter(visible=True).first
    with page.context.expect_page() as opened:
        link.click()  # metadata links open in a new tab
    tab = opened.value
    tab.wait_for_load_state()
    return tab


def test_drift_report_opens_in_mlflow_from_its_link(dagster_ui, mlflow_ui, page, screenshot):
    """feature_drift's latest month links its report (report_url): MLflow's UI shows it."""
    month = GOOD_MONTHS[-1]
    page.goto(f"{dagster_ui}/assets/feature_drift")
    page.get_by_role("cell", name="report_url", exact=True).wait_for()
    report = opened_link(page, f"/artifacts/feature_drift/{month}.html")
    assert report.url.startswith(f"{mlflow_ui}/#/experiments/"), report.url
    # MLflow renders the HTML artifact in a frame of its run's artifact page.
    frame = report.frame_locator("iframe").first
    frame.get_by_role("heading", name=f"Feature drift for {month}").wait_for()
    frame.get_by_role("heading", name=f"vs previous month ({GOOD_MONTHS[0]})").wait_for()
    report.wait_for_timeout(1000)  # the plot's image decodes
    screenshot(report, "drift-report-in-mlflow.png")


def test_model_card_in_mlflow(dagster_ui, mlflow_ui, page, screenshot):
    """production_model links the Production version; its MLflow page shows the model card
    as its description, with the chain's decision about it."""
    page.goto(f"{dagster_ui}/assets/production_model")
    row = page.get_by_role("row").filter(has_text="production_version_url").first
    href = row.locator("a").first.get_attribute("href")
    version = re.search(r"/models/streamflow_churn/versions/(\d+)", href)
    assert version and href.startswith(mlflow_ui), href
    card = opened_link(page, version.group(0))
    shown(card, f"Version {version.group(1)}").wait_for()
    for section in ["Intended use", "Training window", "Data", "Limitations"]:
        card.get_by_role("heading", name=section, exact=True).wait_for()
    card.get_by_role("heading", name=re.compile(r"^Metrics \(holdout, 95% interval\)")).wait_for()
    card.get_by_role("heading", name="Metrics per segment (holdout)").wait_for()
    # The decision that made it Production is on its card (a range run decides every month).
    decision = card.locator("h2:text-is('Promotion decision') + p")
    decision.scroll_into_view_if_needed()
    assert decision.inner_text().startswith("promote ("), decision.inner_text()
    assert "Dagster run" in decision.inner_text()  # the run that decided, linked
    screenshot(card, "model-card-in-mlflow.png")


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


def graphql(dagster_ui: str, query: str, **variables) -> dict:
    request = urllib.request.Request(
        f"{dagster_ui}/graphql",
        data=json.dumps({"query": query, "variables": variables}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.load(answer)["data"]


DONE = {"SUCCESS", "FAILURE", "CANCELED"}
LANDING_ASSETS = [
    "raw_users",
    "raw_subscriptions",
    "raw_labels",
    "raw_usage_agg_30d",
    "raw_payments_agg_90d",
    "raw_support_agg_90d",
]
BACKFILL_RUNS = """
query BackfillRuns($tags: [ExecutionTag!]) {
  runsOrError(filter: {tags: $tags}) { ... on Runs { results { runId status tags { key value } } } }
}
"""


def backfill_runs(dagster_ui: str, backfill_id: str) -> list[dict]:
    tags = [{"key": "dagster/backfill", "value": backfill_id}]
    return graphql(dagster_ui, BACKFILL_RUNS, tags=tags)["runsOrError"]["results"]


def test_range_backfill_picked_in_the_dialog(dagster_ui, page, screenshot):
    """Materialize → the partitions dialog → a range typed as the UI writes it → one backfill,
    built as ONE run over the range (single-run backfill policy), which succeeds.

    Last in the module: it re-materializes the good months' landing tables."""
    page.goto(f"{dagster_ui}/assets/raw_users?view=partitions")
    page.get_by_role("button", name="Materialize…").click()
    # raw_users is one output of landing_ingestion, which builds its six tables together.
    page.get_by_role("button", name="Confirm").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_text("Show all partitions").click()  # else only the last 90 days
    months = f"{GOOD_MONTHS[0]}...{GOOD_MONTHS[-1]}"
    typed = dialog.get_by_role("textbox").first  # the range as text (its hint varies)
    typed.fill(f"[{months}]")
    typed.press("Enter")
    dialog.get_by_text(f"{len(GOOD_MONTHS)} partitions", exact=True).wait_for()
    screenshot(page, "range-backfill-dialog.png")
    dialog.get_by_role("button", name="Launch backfill").click()

    created = page.get_by_text(re.compile(r"^Created backfill \w+$"))
    backfill_id = created.inner_text().split()[-1]
    page.goto(f"{dagster_ui}/runs/b/{backfill_id}")  # where the toast's View leads (it fades)
    shown(page, months).wait_for()  # the backfill's partition selection

    deadline = time.monotonic() + 300
    runs = backfill_runs(dagster_ui, backfill_id)
    while not (runs and runs[0]["status"] in DONE) and time.monotonic() < deadline:
        time.sleep(3)
        runs = backfill_runs(dagster_ui, backfill_id)
    assert len(runs) == 1, runs  # the whole range in one run
    tags = {tag["key"]: tag["value"] for tag in runs[0]["tags"]}
    assert runs[0]["status"] == "SUCCESS", runs
    assert tags["dagster/asset_partition_range_start"] == GOOD_MONTHS[0], tags
    assert tags["dagster/asset_partition_range_end"] == GOOD_MONTHS[-1], tags
    assert tags["dagster/code_location"] == LOCATION, tags
    # The backfill's page: every table of landing_ingestion done for both months.
    for asset in LANDING_ASSETS:
        shown(page, asset).wait_for()
    done = page.get_by_text("100% completed", exact=True).filter(visible=True)
    deadline = time.monotonic() + 120
    while done.count() < len(LANDING_ASSETS) and time.monotonic() < deadline:
        page.wait_for_timeout(2000)  # the page polls the backfill
    assert done.count() == len(LANDING_ASSETS)
    screenshot(page, "range-backfill.png")
