"""Which months have landed: the AS_OF rule for a month folder's name, and month discovery.

Pure (no Dagster): the CLI, the landing sensor and the freshness schedule all read the
landing folder through these functions, with the AS_OF rule of `lib/as_of.py`.
"""

from __future__ import annotations

from pathlib import Path

from ..lib.as_of import validate_as_of
from .contract import LANDING_TABLES

REQUIRED_FILES = tuple(t.file for t in LANDING_TABLES if t.required)
LABELS_FILE = next(t.file for t in LANDING_TABLES if t.name == "labels")


def landed_months(landing_dir: Path) -> list[str]:
    """Month folders of the landing folder whose name is a month-end AS_OF, oldest first."""
    if not landing_dir.is_dir():
        return []
    months = []
    for child in sorted(landing_dir.iterdir()):
        if child.is_dir():
            try:
                validate_as_of(child.name)
            except ValueError:
                continue
            months.append(child.name)
    return months


def complete_months(landing_dir: Path) -> list[str]:
    """Landed months whose required files are all there (labels may come later)."""
    return [
        month
        for month in landed_months(landing_dir)
        if all((landing_dir / month / name).is_file() for name in REQUIRED_FILES)
    ]


def has_labels(landing_dir: Path, month: str) -> bool:
    return (landing_dir / month / LABELS_FILE).is_file()
