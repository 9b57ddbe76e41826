"""Which months have landed: the AS_OF rule for a month folder's name, and month discovery.

Pure (no Dagster): the CLI, the landing sensor and the freshness schedule all read the
landing folder through these functions, with the AS_OF rule of `lib/as_of.py`.
"""

from __future__ import annotations

from pathlib import Path

from ..lib.as_of import validate_as_of
from ..platform.settings import landing_settle_seconds
from .completeness import check_month
from .contract import LANDING_TABLES

REQUIRED_FILES = tuple(t.file for t in LANDING_TABLES if t.required)
LABELS_FILE = next(t.file for t in LANDING_TABLES if t.name == "labels")


def landed_months(landing_dir: Path) -> list[str]:
    """Month folders of the landing folder whose name is a month-end AS_OF, oldest first."""
    return [m for m in _month_folders(landing_dir) if _misnamed(m) is None]


def misnamed_months(landing_dir: Path) -> list[tuple[str, str]]:
    """Folders of the landing folder that are not a month's AS_OF: (name, reason). The CLI
    and the landing sensor say them; they are never skipped silently."""
    return [(m, reason) for m in _month_folders(landing_dir) if (reason := _misnamed(m))]


def _month_folders(landing_dir: Path) -> list[str]:
    if not landing_dir.is_dir():
        return []
    return sorted(
        c.name for c in landing_dir.iterdir() if c.is_dir() and not c.name.startswith(".")
    )


def _misnamed(name: str) -> str | None:
    try:
        validate_as_of(name)
    except ValueError as err:
        return str(err)
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
