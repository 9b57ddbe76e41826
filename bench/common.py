"""Benchmark helpers: wall time and peak memory of this process tree, sampled."""

from __future__ import annotations

import os
import platform
import threading
import time
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import psutil


@dataclass
class Measure:
    seconds: float = 0.0
    peak_rss_mb: float = 0.0


@contextmanager
def measured(interval_s: float = 0.05):
    """Wall seconds and peak summed RSS of this process and its children (dbt, workers)."""
    me = psutil.Process(os.getpid())
    result, stop = Measure(), threading.Event()

    def sample() -> None:
        while not stop.is_set():
            rss = 0
            for proc in [me, *me.children(recursive=True)]:
                with suppress(psutil.Error):
                    rss += proc.memory_info().rss
            result.peak_rss_mb = max(result.peak_rss_mb, rss / 2**20)
            stop.wait(interval_s)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    started = time.perf_counter()
    try:
        yield result
    finally:
        result.seconds = time.perf_counter() - started
        stop.set()
        thread.join()


def machine() -> str:
    mem_gb = psutil.virtual_memory().total / 2**30
    python = platform.python_version()
    return f"{platform.node()} {os.cpu_count()} cores {mem_gb:.0f} GB, Python {python}"


def hold_work_folder(work: Path, script: str) -> Path:
    """Make `work` and hold its lock until this process exits: two benchmarks sharing a state
    folder stop each other's PostgreSQL (seen once); the second one is refused instead."""
    import fcntl
    import sys

    work = work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    lock = open(work / ".lock", "w")  # noqa: SIM115 (held until the process exits)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        sys.exit(f"{work} is in use by another {script}: wait for it or pass --work")
    _HELD.append(lock)
    return work


_HELD: list = []  # the open lock files: closing one would release its lock
