"""Benchmark helpers: wall time and peak memory of this process tree, sampled."""

from __future__ import annotations

import os
import platform
import threading
import time
from contextlib import contextmanager, suppress
from dataclasses import dataclass

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
