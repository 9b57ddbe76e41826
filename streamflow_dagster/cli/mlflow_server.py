"""`streamflow mlflow-server`: MLflow's tracking server over StreamFlow's database `mlflow`."""

from __future__ import annotations

import os

import click


@click.command("mlflow-server")
@click.option(
    "--artifacts-destination",
    required=True,
    metavar="URI",
    help="Where the server stores artifacts: s3://BUCKET/PATH (MLFLOW_S3_ENDPOINT_URL for an "
    "S3-compatible store, AWS_* credentials), or a folder of the server's machine.",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--workers", default=2, show_default=True, type=click.IntRange(min=1))
@click.option(
    "--allowed-hosts",
    default=None,
    help="Host headers the server accepts besides localhost and private IPs "
    "(e.g. mlflow.example.com), as MLflow's own option.",
)
def mlflow_server(
    artifacts_destination: str, host: str, port: int, workers: int, allowed_hosts: str | None
) -> None:
    """Run MLflow's tracking server (foreground) for clients on any machine.

    Backend: database `mlflow` of the warehouse's PostgreSQL (the embedded server, or
    STREAMFLOW_DATABASE_URL's). Artifacts are proxied: clients send and fetch them through
    the server (mlflow-artifacts:/), which keeps them in --artifacts-destination. Point every
    client (`streamflow run`, the deployment, `streamflow serve`) at it with
    MLFLOW_TRACKING_URI=http://HOST:PORT; they then need no artifact folder of their own.
    """
    from ..platform.mlflow_server import MlflowServerError, server_command
    from .ports import ensure_port_free

    ensure_port_free(host, port)
    try:
        command = server_command(
            artifacts_destination,
            host=host,
            port=port,
            workers=workers,
            allowed_hosts=allowed_hosts,
        )
    except MlflowServerError as err:
        raise click.ClickException(str(err)) from None
    click.echo(f"MLflow server: {command.display()}", err=True)
    click.echo(f"clients: MLFLOW_TRACKING_URI=http://{host}:{port}", err=True)
    os.execve(command.argv[0], command.argv, command.env)  # the server is this process now
