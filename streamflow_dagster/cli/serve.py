"""`streamflow serve`: the online API under uvicorn."""

from __future__ import annotations

import ipaddress
import logging

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
def serve(host: str, port: int, access_log: bool, log_level: str) -> None:
    """The online API: features and churn predictions of the Production model.

    Reads the Feast online store directly through the churn_v1 feature service and loads
    models:/streamflow_churn@production, reloading it when the alias moves (every
    STREAMFLOW_SERVE_RELOAD_SECONDS, default 10). Optional A/B split:
    STREAMFLOW_SERVE_CHALLENGER_ALIAS and STREAMFLOW_SERVE_CHALLENGER_SHARE (0-1).
    Admin calls (POST /admin/reload, PUT /admin/split) need STREAMFLOW_API_TOKEN.
    The port opens once the Production model and the store are loaded (at most 120 s), so
    the first request gets an answer. OpenAPI docs at http://HOST:PORT/docs (local files, no
    internet needed), Prometheus metrics at /metrics.
    """
    from ..platform.settings import load_serve_settings
    from .ports import ensure_port_free

    try:
        load_serve_settings()  # a malformed STREAMFLOW_SERVE_* setting: say which, first
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    ensure_port_free(host, port)  # before the seconds of loading the store and the model

    import uvicorn

    from ..platform.settings import apply_library_env_defaults
    from ..serving.app import create_app
    from ..serving.service import Service

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(message)s")
    # A model download is a second or two: MLflow's progress bars would only clutter the log.
    apply_library_env_defaults()
    if not _is_loopback(host):
        click.echo(
            f"Binding to {host}: the API is reachable from other machines. Put it behind TLS "
            "and set STREAMFLOW_API_TOKEN for the admin calls.",
            err=True,
        )
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


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
