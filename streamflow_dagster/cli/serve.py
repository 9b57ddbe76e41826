"""`streamflow serve`: the online API under uvicorn."""

from __future__ import annotations

import ipaddress
import logging
import os

import click

LOOPBACK = "127.0.0.1"


@click.command("serve")
@click.option("--host", default=LOOPBACK, show_default=True, help="Address to bind (loopback).")
@click.option("--port", default=8000, show_default=True, type=int)
@click.option(
    "--access-log/--no-access-log",
    default=False,
    show_default=True,
    help="One log line per request (costs throughput; /metrics counts requests anyway).",
)
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"]),
)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=None,
    help="API processes on the same port (default: STREAMFLOW_SERVE_WORKERS, else 1). Each "
    "loads the models itself; /metrics sums the workers' counts.",
)
def serve(host: str, port: int, access_log: bool, log_level: str, workers: int | None) -> None:
    """The online API: features and churn predictions of the Production model.

    Reads the Feast online store directly through the churn_v1 feature service and loads
    models:/streamflow_churn@production, reloading it when the alias moves (every
    STREAMFLOW_SERVE_RELOAD_SECONDS, default 10). Optional A/B split:
    STREAMFLOW_SERVE_CHALLENGER_ALIAS and STREAMFLOW_SERVE_CHALLENGER_SHARE (0-1).
    Admin calls (POST /admin/reload, PUT /admin/split) need STREAMFLOW_API_TOKEN.
    The port opens once the Production model and the store are loaded (at most 120 s), so
    the first request gets an answer. OpenAPI docs at http://HOST:PORT/docs (local files, no
    internet needed), Prometheus metrics at /metrics.

    With --workers N (N > 1) the workers share the port; /metrics (from any of them) sums
    their counters through Prometheus multiprocess files under $STREAMFLOW_HOME/serving, and
    the A/B split is set at start only (PUT /admin/split answers 409).
    """
    from ..platform.settings import load_serve_settings
    from .ports import ensure_port_free

    try:
        settings = load_serve_settings()  # a malformed STREAMFLOW_SERVE_* setting: say which
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    workers = workers or settings.workers
    ensure_port_free(host, port)  # before the seconds of loading the store and the model

    from ..platform.settings import apply_library_env_defaults

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(message)s")
    # A model download is a second or two: MLflow's progress bars would only clutter the log.
    apply_library_env_defaults()
    if not _is_loopback(host):
        click.echo(
            f"Binding to {host}: the API is reachable from other machines. Put it behind TLS "
            "and set STREAMFLOW_API_TOKEN for the admin calls.",
            err=True,
        )
    if workers > 1:
        _serve_workers(host, port, access_log, log_level, workers)
        return
    import uvicorn

    from ..serving.app import create_app
    from ..serving.service import Service

    click.echo("Starting the online API (database, feature service, production model) ...")
    try:
        service = Service.from_installation()
    except ValueError as error:  # a malformed STREAMFLOW_SERVE_* setting: say which
        raise click.UsageError(str(error)) from None
    click.echo(
        f"API on http://{host}:{port} once the Production model and the online store are "
        "loaded (docs: /docs, readiness: /ready; Ctrl+C stops)"
    )
    uvicorn.run(
        create_app(service),
        host=host,
        port=port,
        access_log=access_log,
        log_level=log_level,
        workers=1,
    )


def _serve_workers(host: str, port: int, access_log: bool, log_level: str, workers: int) -> None:
    """N uvicorn worker processes, each building the app from the installation (a factory:
    an app object cannot cross into a spawned process)."""
    import uvicorn

    from ..platform.db import start_warehouse
    from ..platform.settings import load_settings
    from ..serving.metrics import prepare_multiprocess_dir

    settings = load_settings()
    click.echo(f"Starting {workers} API workers (each loads the feature service and the model) ...")
    start_warehouse(settings)  # once, here: the workers then find the embedded server running
    metrics_dir = settings.serve_metrics_dir
    prepare_multiprocess_dir(metrics_dir)
    # Read by prometheus_client when a worker imports it (the older name by Feast's metrics,
    # which would otherwise point both at a temp folder of its own).
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    os.environ["PROMETHEUS_MULTIPROCESS_DIR"] = str(metrics_dir)
    os.environ["STREAMFLOW_SERVE_WORKERS"] = str(workers)
    click.echo(
        f"API on http://{host}:{port} (docs: /docs, readiness: /ready, metrics summed over the "
        "workers: /metrics; Ctrl+C stops)"
    )
    uvicorn.run(
        "streamflow_dagster.serving.workers:app_from_installation",
        factory=True,
        host=host,
        port=port,
        access_log=access_log,
        log_level=log_level,
        workers=workers,
    )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
