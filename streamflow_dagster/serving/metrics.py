"""Prometheus metrics of the API: one registry per app (tests make many), or, under
`streamflow serve --workers N`, prometheus_client's multiprocess mode summed over the workers.

In multiprocess mode every worker writes its counters and histograms to files in
PROMETHEUS_MULTIPROC_DIR (set by the CLI before the workers start, emptied at start) and
whichever worker answers /metrics reads them all: request and prediction counts are totals
over the workers. The standard collectors cannot be summed that way, so:
- process_* (CPU, memory, open files) is read from /proc for every live worker, one series
  per worker labelled `pid` (ProcessCollector pointed at that pid);
- python_gc_* are counters of the same names that each worker advances from gc.get_stats()
  after each of its requests (a gc callback cannot take prometheus_client's non-reentrant lock).
"""

from __future__ import annotations

import gc
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
    multiprocess,
    values,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

# Request latencies from 0.5 ms (a batch at concurrency 1) to 2.5 s (a 503 after a timeout).
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 2.5)
STORE_BUCKETS = (0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.1, 1)
MEDIA_TYPE = CONTENT_TYPE_LATEST
_PID_OF_FILE = re.compile(r"_(\d+)\.db$")


@dataclass
class Metrics:
    registry: CollectorRegistry
    requests: Counter
    latency: Histogram
    store_latency: Histogram
    model_version: Gauge
    predictions: Counter
    log_dropped: Counter
    multiprocess_dir: Path | None = None
    gc_counters: tuple[Counter, Counter, Counter] | None = None
    _gc_seen: list[tuple[int, int, int]] = field(default_factory=list)

    def exposition(self) -> bytes:
        """The text /metrics answers: this process's registry, or every worker's files."""
        if self.multiprocess_dir is None:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        forget_dead_workers(self.multiprocess_dir)
        multiprocess.MultiProcessCollector(registry, path=str(self.multiprocess_dir))
        WorkersProcessCollector(self.multiprocess_dir, registry)
        PlatformCollector(registry=registry)
        return generate_latest(registry)

    def sync_gc(self) -> None:
        """Advance the python_gc_* counters to this worker's gc.get_stats() (multiprocess)."""
        if self.gc_counters is None:
            return
        stats = [(s["collected"], s["uncollectable"], s["collections"]) for s in gc.get_stats()]
        if stats == self._gc_seen:
            return
        previous = self._gc_seen or [(0, 0, 0)] * len(stats)
        for generation, (now, before) in enumerate(zip(stats, previous, strict=True)):
            for counter, new, old in zip(self.gc_counters, now, before, strict=True):
                if new > old:
                    counter.labels(str(generation)).inc(new - old)
        self._gc_seen = stats


def build_metrics(multiprocess_dir: Path | None = None) -> Metrics:
    """The API's metrics; with `multiprocess_dir`, summed over the workers' files there.

    Without it, this process's own registry: prometheus_client may still keep values in
    files (importing Feast sets PROMETHEUS_MULTIPROC_DIR to a temp folder of its own), but
    only this registry's metrics are answered, as with one worker before."""
    if multiprocess_dir is not None and not values.ValueClass._multiprocess:
        raise RuntimeError(
            f"multiprocess metrics in {multiprocess_dir} asked for, but prometheus_client was "
            "imported without PROMETHEUS_MULTIPROC_DIR: set it before the workers start "
            "(`streamflow serve --workers N` does)"
        )
    registry = CollectorRegistry()
    if multiprocess_dir is None:
        ProcessCollector(registry=registry)
        GCCollector(registry=registry)
        PlatformCollector(registry=registry)
    metrics = Metrics(
        registry=registry,
        requests=Counter(
            "streamflow_requests",
            "HTTP requests by endpoint (route template) and status code.",
            ["endpoint", "method", "status"],
            registry=registry,
        ),
        latency=Histogram(
            "streamflow_request_seconds",
            "HTTP request latency by endpoint and status code.",
            ["endpoint", "method", "status"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        ),
        store_latency=Histogram(
            "streamflow_online_store_read_seconds",
            "One batched read of the online store (all users of a batch, every feature view).",
            buckets=STORE_BUCKETS,
            registry=registry,
        ),
        model_version=Gauge(
            "streamflow_model_version",
            "Registry version in use per variant (0: none loaded); under several workers one "
            "series per live worker (label pid): a worker still on an older version shows.",
            ["variant", "alias"],
            registry=registry,
            multiprocess_mode="liveall",
        ),
        predictions=Counter(
            "streamflow_predictions",
            "Predictions served, by variant and model version.",
            ["variant", "model_version"],
            registry=registry,
        ),
        log_dropped=Counter(
            "streamflow_prediction_log_dropped",
            "Prediction log rows dropped because the database was away too long.",
            registry=registry,
        ),
        multiprocess_dir=multiprocess_dir,
    )
    if multiprocess_dir is not None:
        metrics.gc_counters = tuple(
            Counter(name, text, ["generation"], registry=registry)
            for name, text in (
                ("python_gc_objects_collected", "Objects collected during gc (all workers)"),
                ("python_gc_objects_uncollectable", "Uncollectable objects found during GC"),
                ("python_gc_collections", "Number of times this generation was collected"),
            )
        )
        metrics.sync_gc()
    return metrics


def prepare_multiprocess_dir(directory: Path) -> None:
    """An empty folder for the workers' metric files: files of a previous run would add its
    counts to this one's (and their pids may be reused)."""
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink()


def worker_pids(directory: Path) -> list[int]:
    """Pids that wrote metric files and still run."""
    pids = {int(m.group(1)) for f in directory.glob("*.db") if (m := _PID_OF_FILE.search(f.name))}
    return sorted(pid for pid in pids if _alive(pid))


def forget_dead_workers(directory: Path) -> None:
    """Drop the live-mode gauges of workers that are gone (uvicorn has no child-exit hook)."""
    files = directory.glob("gauge_live*.db")
    pids = {int(m.group(1)) for f in files if (m := _PID_OF_FILE.search(f.name))}
    for pid in pids:
        if not _alive(pid):
            multiprocess.mark_process_dead(pid, str(directory))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class WorkersProcessCollector(Collector):
    """process_* of every live worker, one series per worker (label `pid`)."""

    def __init__(self, directory: Path, registry: CollectorRegistry):
        self.directory = directory
        registry.register(self)

    def collect(self) -> Iterable[Metric]:
        families: dict[str, Metric] = {}
        for pid in worker_pids(self.directory):
            collector = ProcessCollector(pid=lambda pid=pid: pid, registry=None)
            for family in collector.collect():
                merged = families.setdefault(
                    family.name, Metric(family.name, family.documentation, family.type)
                )
                for sample in family.samples:
                    merged.add_sample(sample.name, {**sample.labels, "pid": str(pid)}, sample.value)
        return list(families.values())
