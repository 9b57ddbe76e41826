"""The landing sensor's plan: new, changed and not-ready months, late labels."""

from __future__ import annotations

import json

from streamflow_dagster.landing.arrivals import parse_state, plan_arrivals
from streamflow_dagster.landing.completeness import LABELS_FILE, REFUSED
from tests.unit.landing.test_completeness import land, truncate_to_lines

JAN, FEB = "2024-01-31", "2024-02-29"


def months(plan, kind):
    return [c.month for c in getattr(plan, kind)]


def test_new_months_then_nothing_then_a_changed_month(tmp_path):
    land(tmp_path / JAN)
    land(tmp_path / FEB, labels=False)
    first = plan_arrivals(tmp_path, [JAN, FEB], set(), None, 0)
    assert months(first, "new") == [JAN, FEB] and not first.changed
    again = plan_arrivals(tmp_path, [JAN, FEB], {JAN, FEB}, first.state, 0)
    assert not (again.new or again.changed or again.late_labels)

    users = tmp_path / JAN / "users.csv"
    users.write_text(users.read_text() + "u9,x,x,x,x,x\n")
    changed = plan_arrivals(tmp_path, [JAN, FEB], {JAN, FEB}, again.state, 0)
    assert months(changed, "changed") == [JAN] and not changed.late_labels


def test_a_half_written_month_waits_and_a_refused_one_is_not_requested(tmp_path):
    land(tmp_path / JAN, age_s=0)  # still being written, no manifest
    plan = plan_arrivals(tmp_path, [JAN], set(), None, settle_seconds=30)
    assert not plan.new and months(plan, "not_ready") == [JAN]

    land(tmp_path / FEB, manifest=True)
    truncate_to_lines(tmp_path / FEB / "usage_agg_30d.csv", 3)
    plan = plan_arrivals(tmp_path, [FEB], set(), None, 0)
    assert not plan.new and plan.not_ready[0].status == REFUSED


def test_late_labels_once_and_again_when_they_change(tmp_path):
    land(tmp_path / JAN, labels=False)
    state = plan_arrivals(tmp_path, [JAN], set(), None, 0).state
    (tmp_path / JAN / LABELS_FILE).write_text("user_id,churn_label\nu1,true\n")
    plan = plan_arrivals(tmp_path, [JAN], {JAN}, state, 0)
    assert months(plan, "late_labels") == [JAN] and not plan.changed
    plan = plan_arrivals(tmp_path, [JAN], {JAN}, plan.state, 0)
    assert not plan.late_labels
    (tmp_path / JAN / LABELS_FILE).write_text("user_id,churn_label\nu1,false\n")
    assert months(plan_arrivals(tmp_path, [JAN], {JAN}, plan.state, 0), "late_labels") == [JAN]


def test_a_first_tick_takes_known_months_as_run(tmp_path):
    land(tmp_path / JAN)
    plan = plan_arrivals(tmp_path, [JAN], {JAN}, None, 0)
    assert not (plan.new or plan.changed or plan.late_labels)
    assert JAN in plan.state["ran"] and JAN in plan.state["labelled"]


def test_the_earlier_cursor_format_is_read(tmp_path):
    land(tmp_path / JAN)
    land(tmp_path / FEB)
    state = parse_state(json.dumps({"labelled": [JAN]}))
    plan = plan_arrivals(tmp_path, [JAN, FEB], {JAN, FEB}, state, 0)
    assert months(plan, "late_labels") == [FEB] and not plan.changed
