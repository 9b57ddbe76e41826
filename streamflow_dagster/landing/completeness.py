"""When a landing month is complete enough to read: the rule the README states.

A month folder is read only when
1. every required contract file is there, and
2. each contract file is proven whole, either
   - by `_MANIFEST.json`, written by the producer after the files: every file it lists must be
     there with the listed `sha256` and/or `rows` (data rows after the header). A listed file
     that differs is refused, naming the file and what differs; or
   - for a file the manifest does not list (or with no manifest at all): by being unchanged for
     the settle time (its mtime at least `settle_seconds` old).

Why a manifest rather than an empty `_SUCCESS` marker: a marker only says the writer finished,
while the manifest also says what it wrote, so a file cut short afterwards (an interrupted
copy, a truncated re-upload) is caught and named, and its entries give the month a content
fingerprint. The settle time is the fallback for producers that write no manifest.

Pure code over the file system: no Dagster, no database.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from .contract import LANDING_TABLES

MANIFEST = "_MANIFEST.json"
COMPLETE, SETTLING, INCOMPLETE, REFUSED = "complete", "settling", "incomplete", "refused"
CONTRACT_FILES = tuple(t.file for t in LANDING_TABLES)
REQUIRED_FILES = tuple(t.file for t in LANDING_TABLES if t.required)
LABELS_FILE = next(t.file for t in LANDING_TABLES if t.name == "labels")
_HASH_CHUNK = 1 << 20


class LandingNotReady(RuntimeError):
    """A month that is not complete (or was refused) when something wanted to read it."""


@dataclass(frozen=True)
class MonthCheck:
    month: str
    status: str  # COMPLETE, SETTLING (wait), INCOMPLETE (a file missing), REFUSED (mismatch)
    reasons: tuple[str, ...]  # why not complete, one line per file
    fingerprint: str  # the month's data files (not labels): changes when they change
    labels_fingerprint: str | None  # labels.csv, None when it has not landed

    @property
    def complete(self) -> bool:
        return self.status == COMPLETE

    def describe(self) -> str:
        return f"{self.month}: {self.status}: " + "; ".join(self.reasons)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def file_rows(path: Path) -> int:
    """Data rows after the header (CSV records; blank lines are not rows)."""
    with path.open(newline="", encoding="utf-8", errors="replace") as fh:
        return max(sum(1 for record in csv.reader(fh) if record) - 1, 0)


def write_manifest(folder: Path, files: Iterable[str] | None = None) -> Path:
    """Write `_MANIFEST.json` for the contract files in `folder`, atomically; call it last."""
    names = [n for n in (files or CONTRACT_FILES) if (folder / n).is_file()]
    entries = {n: {"rows": file_rows(folder / n), "sha256": file_sha256(folder / n)} for n in names}
    target = folder / MANIFEST
    partial = folder / f".{MANIFEST}.tmp"
    partial.write_text(json.dumps({"files": entries}, indent=2, sort_keys=True) + "\n")
    os.replace(partial, target)  # readers see no manifest or the whole one
    return target


def read_manifest(folder: Path) -> dict[str, dict] | None:
    """The manifest's file entries, None without a manifest; ValueError naming what is wrong."""
    path = folder / MANIFEST
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(
            f"{path} is not valid JSON (line {err.lineno}, column {err.colno}: {err.msg}); "
            'rewrite it as {"files": {"users.csv": {"rows": N, "sha256": "..."}, ...}}'
        ) from None
    files = data.get("files") if isinstance(data, dict) else None
    if not isinstance(files, dict):
        raise ValueError(f'{path} has no "files" object; see the README\'s landing section')
    for name, entry in files.items():
        if not isinstance(entry, dict) or not ({"rows", "sha256"} & set(entry)):
            raise ValueError(f'{path}: entry {name!r} needs "rows" and/or "sha256"')
    return files


def _stat_token(path: Path) -> str:
    st = path.stat()
    return f"{st.st_size}:{st.st_mtime_ns}"


def _digest(parts: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def _file_token(folder: Path, name: str, manifest: dict | None) -> str:
    """What identifies a file's content: its manifest entry, else its size and mtime."""
    if manifest is not None and name in manifest:
        return json.dumps(manifest[name], sort_keys=True)
    return _stat_token(folder / name)


def _verify(folder: Path, name: str, entry: dict) -> str | None:
    """None when the file matches its manifest entry, else what differs."""
    path = folder / name
    if not path.is_file():
        return f"{name}: listed in {MANIFEST} but not there (yet)"
    if "sha256" in entry and file_sha256(path) == entry["sha256"]:
        return None
    rows = file_rows(path)
    wanted_rows = entry.get("rows")
    if wanted_rows is not None and rows != wanted_rows:
        return (
            f"{name}: {rows} rows, {MANIFEST} says {wanted_rows} (size {path.stat().st_size} "
            "bytes); the file is truncated or was replaced: land it again, whole"
        )
    if "sha256" in entry:
        return (
            f"{name}: sha256 differs from {MANIFEST} (rows match: {rows}); the file changed "
            "after the manifest was written: land it again or rewrite the manifest"
        )
    return None


def check_month(
    folder: Path, settle_seconds: float, now: float | None = None, verify: bool = True
) -> MonthCheck:
    """Whether month `folder` may be read now, and the fingerprints of its files.

    `verify=False` skips reading the listed files (no sha256): fingerprints only.
    """
    now = time.time() if now is None else now
    month = folder.name
    present = [n for n in CONTRACT_FILES if (folder / n).is_file()]
    try:
        manifest = read_manifest(folder)
    except ValueError as err:
        return MonthCheck(month, REFUSED, (str(err),), "", None)
    tokens = {n: _file_token(folder, n, manifest) for n in present}
    data_tokens = {n: t for n, t in tokens.items() if n != LABELS_FILE}
    labels = _digest({LABELS_FILE: tokens[LABELS_FILE]}) if LABELS_FILE in tokens else None
    result = (_digest(data_tokens), labels)

    missing = [n for n in REQUIRED_FILES if n not in present]
    if manifest is not None:
        missing += [n for n in manifest if n not in present and n not in missing]
    if missing:
        return MonthCheck(month, INCOMPLETE, tuple(f"{n}: not there yet" for n in missing), *result)
    mismatches = [
        problem
        for n in present
        if manifest is not None and n in manifest and verify
        for problem in [_verify(folder, n, manifest[n])]
        if problem
    ]
    if mismatches:
        return MonthCheck(month, REFUSED, tuple(mismatches), *result)
    unsettled = [
        f"{n}: changed {max(now - (folder / n).stat().st_mtime, 0):.1f} s ago, waiting until "
        f"it is unchanged for {settle_seconds:g} s (or list it in {MANIFEST})"
        for n in present
        if (manifest is None or n not in manifest)
        and now - (folder / n).stat().st_mtime < settle_seconds
    ]
    if unsettled:
        return MonthCheck(month, SETTLING, tuple(unsettled), *result)
    return MonthCheck(month, COMPLETE, (), *result)


def wait_until_complete(
    folder: Path,
    settle_seconds: float,
    timeout_seconds: float,
    on_wait: Callable[[MonthCheck], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> MonthCheck:
    """The month's check once it is complete; LandingNotReady when it cannot or does not get
    there within `timeout_seconds` (only a settling month is waited for)."""
    deadline = time.monotonic() + timeout_seconds
    while True:
        check = check_month(folder, settle_seconds)
        if check.complete:
            return check
        if check.status != SETTLING or time.monotonic() >= deadline:
            raise LandingNotReady(not_ready_message(folder, check))
        if on_wait is not None:
            on_wait(check)
        sleep(min(max(settle_seconds / 4, 0.2), 2.0))


def not_ready_message(folder: Path, check: MonthCheck) -> str:
    advice = {
        INCOMPLETE: "land the missing file(s), then run the month again",
        SETTLING: "the files are still being written; run the month again once they stop "
        "changing, or write a manifest last",
        REFUSED: "nothing of this month was read; fix the file(s) named, then run it again",
    }[check.status]
    return (
        f"Landing month {folder} is not complete ({check.status}): "
        + "; ".join(check.reasons)
        + f". {advice}."
    )


def read_when_complete(
    folder: Path,
    settle_seconds: float,
    read: Callable[[], object],
    on_wait: Callable[[MonthCheck], None] | None = None,
):
    """`read()` once the month is complete, refused if its files changed while it was read."""
    before = wait_until_complete(folder, settle_seconds, 2 * settle_seconds + 30, on_wait)
    result = read()
    after = check_month(folder, settle_seconds, verify=False)
    if (after.fingerprint, after.labels_fingerprint) != (
        before.fingerprint,
        before.labels_fingerprint,
    ):
        raise LandingNotReady(
            f"Landing month {folder} changed while it was being read; nothing of it was "
            "written. Run the month again once its files stop changing."
        )
    return before, result


def require_complete(
    landing_dir: Path,
    months: list[str],
    settle_seconds: float,
    echo: Callable[[str], None] = print,
) -> None:
    """Wait for settling months; LandingNotReady naming every month that is not complete."""
    problems = []
    for month in months:
        try:
            wait_until_complete(
                landing_dir / month,
                settle_seconds,
                2 * settle_seconds + 30,
                on_wait=lambda c: echo(f"waiting for {c.month}: " + "; ".join(c.reasons)),
            )
        except LandingNotReady as err:
            problems.append(str(err))
    if problems:
        raise LandingNotReady(
            "\n".join(problems)
            + "\nNothing was run. Fix the month(s) above, or leave them out with --months."
        )
