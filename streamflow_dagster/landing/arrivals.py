"""What the landing sensor asks for on a tick: new months, changed months, late labels.

Pure code (no Dagster): the sensor passes the months Dagster knows and its last state, and
gets back the months to run and the state to keep. The state remembers, per month, the
fingerprint of the files a run was requested for, so a month whose files change after it
ran is requested again; a month that is not complete (see `completeness`) is never asked for.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from .completeness import MonthCheck, check_month


@dataclass
class ArrivalPlan:
    new: list[MonthCheck] = field(default_factory=list)  # no run was made for it yet
    changed: list[MonthCheck] = field(default_factory=list)  # its files changed since it ran
    late_labels: list[MonthCheck] = field(default_factory=list)  # labels landed/changed later
    not_ready: list[MonthCheck] = field(default_factory=list)  # settling, incomplete, refused
    state: dict = field(default_factory=dict)


def parse_state(raw: str | None) -> dict | None:
    """The sensor's cursor; the earlier format ({"labelled": [months]}) is read too."""
    if not raw:
        return None
    data = json.loads(raw)
    labelled = data.get("labelled", {})
    if isinstance(labelled, list):  # earlier cursor: labels seen, fingerprints unknown
        labelled = dict.fromkeys(labelled)
    return {"ran": dict(data.get("ran", {})), "labelled": dict(labelled)}


def plan_arrivals(
    landing_dir: Path,
    months: list[str],
    known: set[str],
    state: dict | None,
    settle_seconds: float,
    now: float | None = None,
) -> ArrivalPlan:
    """Compare the landed `months` with what ran (`state`); None state: a first tick.

    On a first tick, months already known (defs/month_runs.py) were run by whoever made them (the
    CLI, a backfill): their files now are taken as the ones that ran.
    """
    first_tick = state is None
    ran: dict[str, str] = dict(state["ran"]) if state else {}
    labelled: dict[str, str | None] = dict(state["labelled"]) if state else {}
    plan = ArrivalPlan()
    for month in months:
        folder = landing_dir / month
        baseline = month in known and month not in ran
        quick = check_month(folder, settle_seconds, now=now, verify=False)
        if not baseline and ran.get(month) == quick.fingerprint and _labels_seen(labelled, quick):
            continue  # nothing changed since its run: no need to read the files again
        check = check_month(folder, settle_seconds, now=now, verify=True)
        if not check.complete:
            plan.not_ready.append(check)
            continue
        if baseline:
            ran[month] = check.fingerprint
            if first_tick or (month in labelled and labelled[month] is None):
                labelled[month] = check.labels_fingerprint
        if month not in known or ran[month] != check.fingerprint:
            (plan.changed if month in known else plan.new).append(check)
            ran[month] = check.fingerprint
            labelled[month] = check.labels_fingerprint  # the monthly run reads them too
        elif not _labels_seen(labelled, check):
            plan.late_labels.append(check)
            labelled[month] = check.labels_fingerprint
    plan.state = {"ran": ran, "labelled": {m: fp for m, fp in labelled.items() if fp}}
    return plan


def _labels_seen(labelled: dict, check: MonthCheck) -> bool:
    return check.labels_fingerprint is None or labelled.get(check.month) == check.labels_fingerprint
