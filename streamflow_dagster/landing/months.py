"""Which months have landed: the AS_OF rule for a month folder's name, and month discovery.

Pure (no Dagster): the CLI, the landing sensor and the freshness schedule all read the
landing folder through these functions, with the AS_OF rule of `lib/as_of.py`.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

from ..lib.as_of import validate_as_of
from ..platform.settings import first_month, landing_settle_seconds
from .completeness import check_month
from .contract import LANDING_TABLES

REQUIRED_FILES = tuple(t.file for t in LANDING_TABLES if t.required)
LABELS_FILE = next(t.file for t in LANDING_TABLES if t.name == "labels")


def landed_months(landing_dir: Path, today: date | None = None) -> list[str]:
    """Month folders of the landing folder that name a month partition, oldest first."""
    return [m for m in _month_folders(landing_dir) if _misnamed(m, today) is None]


def misnamed_months(landing_dir: Path, today: date | None = None) -> list[tuple[str, str]]:
    """Folders of the landing folder that are not a month partition: (name, reason). The CLI
    and the landing sensor say them; they are never skipped silently."""
    return [(m, reason) for m in _month_folders(landing_dir) if (reason := _misnamed(m, today))]


def _month_folders(landing_dir: Path) -> list[str]:
    if not landing_dir.is_dir():
        return []
    return sorted(
        c.name for c in landing_dir.iterdir() if c.is_dir() and not c.name.startswith(".")
    )


def _misnamed(name: str, today: date | None = None) -> str | None:
    """Why `name` is not a month partition (defs/partitions.py: month ends from
    STREAMFLOW_FIRST_MONTH to the month that ended last), or None."""
    try:
        as_of = validate_as_of(name)
    except ValueError as err:
        return str(err)
    first = first_month()
    if name < first:
        return (
            f"before the first month {first}: months start at STREAMFLOW_FIRST_MONTH "
            f"(set it to {name} or earlier to run this month)"
        )
    if as_of > (today or datetime.now(UTC).date()):
        return f"the month {name} has not ended yet (its files land after its last day)"
    return None


def complete_months(landing_dir: Path, settle_seconds: float | None = None) -> list[str]:
    """Landed months that are complete by the landing rule (landing/completeness.py: a
    manifest that matches, or files unchanged for the settle time); labels may come later."""
    settle = landing_settle_seconds() if settle_seconds is None else settle_seconds
    return [
        month
        for month in landed_months(landing_dir)
        if check_month(landing_dir / month, settle).complete
    ]


def has_labels(landing_dir: Path, month: str) -> bool:
    return (landing_dir / month / LABELS_FILE).is_file()
