"""Prometheus metrics of the API, in a registry of its own (one per app, so tests can make many)."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Request latencies from 0.5 ms (a batch at concurrency 1) to 2.5 s (a 503 after a timeout).
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 2.5)
STORE_BUCKETS = (0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.1, 1)


@dataclass
class Metrics:
    registry: CollectorRegistry
    requests: Counter
    latency: Histogram
    store_latency: Histogram
    model_version: Gauge
    predictions: Counter
    log_dropped: Counter


def build_metrics() -> Metrics:
    registry = CollectorRegistry()
    return Metrics(
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
            "Registry version in use per variant (0: none loaded).",
            ["variant", "alias"],
            registry=registry,
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
    )
