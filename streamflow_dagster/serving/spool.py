"""Prediction log rows the database could not take before the API stopped, kept on disk.

While the API runs, rows wait in memory (serving.predlog) until the database takes them. If
the API stops while the database is away, what is still buffered is written here, one JSON
line per row, and the next API process sharing the state folder writes it to
serving.prediction_log before anything newer. A file is claimed by renaming it (so two API
processes never replay the same file) and deleted only once its rows are committed.
"""

from __future__ import annotations

import json
import os
import uuid
from datetime import datetime
from pathlib import Path

SUFFIX = ".jsonl"
_CLAIMED = ".claimed"
# Positions of the timestamps in a prediction log row (see predlog.COLUMNS).
_TIMESTAMP_FIELDS = (0, 7)


def _encode(row: tuple) -> str:
    return json.dumps(
        [value.isoformat() if isinstance(value, datetime) else value for value in row]
    )


def _decode(line: str) -> tuple:
    values = json.loads(line)
    for index in _TIMESTAMP_FIELDS:
        if values[index] is not None:
            values[index] = datetime.fromisoformat(values[index])
    return tuple(values)


class Spool:
    def __init__(self, directory: Path):
        self.directory = directory

    def save(self, rows: list[tuple]) -> Path:
        """Write `rows` to a new spool file (complete or absent: written, synced, renamed)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        name = f"prediction_log-{datetime.now().strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}"
        partial = self.directory / f".{name}.partial"
        with partial.open("w", encoding="utf-8") as out:
            out.writelines(_encode(row) + "\n" for row in rows)
            out.flush()
            os.fsync(out.fileno())
        final = self.directory / f"{name}{SUFFIX}"
        partial.rename(final)
        return final

    def claim(self) -> tuple[list[tuple], list[Path]]:
        """Rows of every spool file not claimed by another process, and the claimed files."""
        if not self.directory.is_dir():
            return [], []
        rows, claimed = [], []
        orphans = [p for p in self.directory.glob(f"*{_CLAIMED}-*") if not _owner_alive(p)]
        for path in sorted([*self.directory.glob(f"*{SUFFIX}"), *orphans]):
            original = path.name.split(_CLAIMED)[0]
            mine = path.with_name(f"{original}{_CLAIMED}-{os.getpid()}")
            try:
                path.rename(mine)
            except FileNotFoundError:
                continue  # claimed by another API process just now
            rows.extend(_decode(line) for line in mine.read_text(encoding="utf-8").splitlines())
            claimed.append(mine)
        return rows, claimed

    @staticmethod
    def release(paths: list[Path]) -> None:
        """Delete claimed files whose rows are now in the database."""
        for path in paths:
            path.unlink(missing_ok=True)


def _owner_alive(path: Path) -> bool:
    """Whether the process that claimed `path` still runs (else its claim is void)."""
    pid = path.name.rsplit("-", 1)[-1]
    if not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True
