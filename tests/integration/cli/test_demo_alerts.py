"""`streamflow demo` ends by listing the alerts its runs raised (through the deployment).

A fresh state folder with one landed month that fails its landing checks: the demo's run
fails, the deployment's alert_sensor records the failed check and the failed run, and the
demo waits for that tick and lists both.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from streamflow_dagster.landing.completeness import write_manifest
from streamflow_dagster.landing.demo_data import generate_landing
from tests.e2e.conftest import make_month_bad

pytestmark = pytest.mark.integration

STREAMFLOW = str(Path(sys.executable).with_name("streamflow"))
MONTH = "2024-01-31"


def test_demo_lists_the_alerts_it_raised(server_home):
    home = server_home("demo-alerts")  # a server run as root can enter it (tests/conftest.py)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STREAMFLOW_", "DAGSTER_"))}
    env.update(STREAMFLOW_HOME=str(home), DAGSTER_HOME=str(home / "dagster"))
    generate_landing(home / "landing", users=300, months=1, seed=55)
    make_month_bad(home / "landing" / MONTH / "subscriptions.csv")
    write_manifest(home / "landing" / MONTH)  # a complete export with bad content
    try:
        demo = subprocess.run(
            [STREAMFLOW, "demo"], env=env, capture_output=True, text=True, timeout=1200
        )
    finally:
        subprocess.run([STREAMFLOW, "deploy", "stop"], env=env, check=False)
        subprocess.run([STREAMFLOW, "db", "stop"], env=env, check=False)
    out = demo.stdout
    assert demo.returncode == 1, out + demo.stderr  # the month failed its landing checks
    listing = out[out.index("Alerts raised (2, in ops.alerts):") :].splitlines()[1:]
    assert listing[0].startswith(
        f"  ERROR Check raw_subscriptions / reject_rate failed for {MONTH}"
    )
    assert listing[1].startswith(f"  ERROR Run of streamflow_monthly for {MONTH} failed: ")
