"""The prediction log's spool file: rows survive a stop while the database is away."""

from __future__ import annotations

import multiprocessing
import os
from datetime import UTC, datetime
from pathlib import Path

from streamflow_dagster.serving.spool import Spool

ROW = (
    datetime(2024, 3, 1, 12, 0, tzinfo=UTC),
    "u-1",
    "production",
    "production",
    3,
    0.42,
    True,
    datetime(2024, 2, 29, tzinfo=UTC),
)


def test_saved_rows_come_back_once_and_are_released(tmp_path):
    spool = Spool(tmp_path)
    spool.save([ROW, (*ROW[:7], None)])
    rows, claimed = spool.claim()
    assert rows == [ROW, (*ROW[:7], None)]
    assert Spool(tmp_path).claim() == ([], [])  # claimed: another process does not replay it
    Spool.release(claimed)
    assert list(tmp_path.iterdir()) == []


def test_a_claim_of_a_dead_process_is_taken_over(tmp_path):
    spool = Spool(tmp_path)
    path = spool.save([ROW])
    dead_pid = 2**22 + 17  # above the default pid_max: no such process
    path.rename(path.with_name(f"{path.name}.claimed-{dead_pid}"))
    rows, claimed = spool.claim()
    assert rows == [ROW]
    assert claimed[0].name.endswith(f".claimed-{os.getpid()}")


def _save_and_claim(directory: str, user: str, start, results) -> None:
    start.wait(timeout=120)  # both processes are up: they save at the same time
    spool = Spool(Path(directory))
    for _ in range(20):  # within the same second as the other worker: names must still differ
        spool.save([(*ROW[:1], user, *ROW[2:])])
    rows, claimed = spool.claim()
    Spool.release(claimed)  # as once the rows are committed
    results.put((os.getpid(), rows))


def test_two_workers_never_clobber_or_replay_each_others_files(tmp_path):
    """`serve --workers 2`: both save into one folder at once and claim at start; every row
    is kept and replayed by exactly one of them.

    Two processes of their own behind a barrier: a process pool of two may hand both calls to
    whichever worker starts first (seen under `make test`'s load: one pid for both).
    """
    context = multiprocessing.get_context("spawn")
    start, queue = context.Barrier(2), context.Queue()
    workers = [
        context.Process(target=_save_and_claim, args=(str(tmp_path), user, start, queue))
        for user in ("w-1", "w-2")
    ]
    for worker in workers:
        worker.start()
    results = [queue.get(timeout=180) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    assert len({pid for pid, _ in results}) == 2
    replayed = [row[1] for _, rows in results for row in rows]
    leftover, _ = Spool(tmp_path).claim()
    users = sorted(replayed + [row[1] for row in leftover])
    assert users == ["w-1"] * 20 + ["w-2"] * 20
