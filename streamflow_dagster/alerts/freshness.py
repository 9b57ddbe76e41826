"""Is a month late? The month that should have landed by a day, and the alert if it has not."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from .model import MONTH_OVERDUE, OVERDUE_SEVERITY, Alert, overdue_dedup_key

# The export of month M is cut after M closes and usually lands within 1-3 working days;
# 5 calendar days cover that plus a weekend, so an alert means late, not merely slow.
FRESHNESS_GRACE_DAYS = 5


@dataclass(frozen=True)
class Overdue:
    month: str  # the AS_OF that should have landed
    deadline: str  # month end + grace
    newest_landed: str
    days_late: int
    missing_months: int  # months between the newest landed one and the expected one


def _previous_month_end(day: date) -> date:
    return day.replace(day=1) - timedelta(days=1)


def expected_month(today: date, grace_days: int = FRESHNESS_GRACE_DAYS) -> date:
    """The newest month end M with M + grace < today: the month that must be there by now."""
    month = _previous_month_end(today + timedelta(days=1))  # today itself may be a month end
    while month + timedelta(days=grace_days) >= today:
        month = _previous_month_end(month)
    return month


def overdue_month(
    today: date, landed: list[str], grace_days: int = FRESHNESS_GRACE_DAYS
) -> Overdue | None:
    """The overdue month, or None when the expected month (or a newer one) has landed.

    With nothing landed at all there is no schedule to be late against yet: None.
    """
    if not landed:
        return None
    expected = expected_month(today, grace_days)
    newest = max(date.fromisoformat(m) for m in landed)
    if newest >= expected:
        return None
    missing = (expected.year - newest.year) * 12 + expected.month - newest.month
    deadline = expected + timedelta(days=grace_days)
    return Overdue(
        month=expected.isoformat(),
        deadline=deadline.isoformat(),
        newest_landed=newest.isoformat(),
        days_late=(today - deadline).days,
        missing_months=missing,
    )


def overdue_alert(overdue: Overdue, landing_dir: str) -> Alert:
    return Alert(
        kind=MONTH_OVERDUE,
        severity=OVERDUE_SEVERITY,
        message=(
            f"Month {overdue.month} has not landed in {landing_dir}: due by {overdue.deadline}, "
            f"{overdue.days_late} day(s) late; newest landed month is {overdue.newest_landed}"
        ),
        dedup_key=overdue_dedup_key(overdue.month),
        partition=overdue.month,
        metadata={
            "expected_month": overdue.month,
            "deadline": overdue.deadline,
            "days_late": overdue.days_late,
            "newest_landed": overdue.newest_landed,
            "missing_months": overdue.missing_months,
            "landing_dir": landing_dir,
        },
    )
