"""`streamflow model ...`: manual moves of alias `production`, recorded like automatic ones."""

from __future__ import annotations

import getpass
import os
import sys
from pathlib import Path

import click

from ..platform.settings import load_settings


@click.group("model")
def model() -> None:
    """The registered model streamflow_churn: status, promote, rollback, the MLflow UI."""


def _registry():
    """(MLflow client, warehouse URL) of this installation; starts the embedded server if needed."""
    from ..platform.db import start_warehouse
    from ..platform.mlflow_reach import MlflowUnreachable, require_reachable
    from ..platform.mlflow_store import mlflow_client, prepare_store, start_store

    settings = load_settings()
    url = start_warehouse(settings)
    store = start_store(settings, prepare=False)
    try:
        require_reachable(store.tracking_uri, step="streamflow model")
    except MlflowUnreachable as err:
        raise click.ClickException(str(err)) from None
    prepare_store(store)
    return mlflow_client(store), url


def _who() -> str:
    return f"cli:{getpass.getuser()}"


def _echo_move(client, moved) -> None:
    from ..ml.model_card import record_move

    decision = moved.decision
    click.echo(f"{decision.action}: {decision.reason}")
    for label, contender in (("target", decision.challenger), ("replaced", decision.champion)):
        if contender is not None:
            auc = f"{contender.auc:.4f}" if contender.auc is not None else "n/a"
            click.echo(f"  {label}: v{contender.version} ({contender.as_of}), holdout AUC {auc}")
    click.echo(f"  production: v{moved.production}   previous: v{moved.previous or '-'}")
    if moved.recorded_at:
        click.echo(f"  recorded as decision.* tags at {moved.recorded_at}")
        if record_move(client, moved):
            click.echo(f"  and in v{decision.challenger.version}'s model card")


@model.command("promote")
@click.argument("version", type=int)
@click.option("--force", is_flag=True, help="Promote even if the version failed its checks.")
def promote(version: int, force: bool) -> None:
    """Move alias `production` to VERSION (the old one becomes `previous`)."""
    from ..ml.champion import promotion_lock
    from ..ml.manual_moves import promote_by_hand

    client, url = _registry()
    try:
        with promotion_lock(url):
            moved = promote_by_hand(client, version, run=_who(), force=force)
    except (LookupError, ValueError) as err:
        raise click.ClickException(str(err)) from None
    _echo_move(client, moved)


@model.command("rollback")
def rollback() -> None:
    """Move `production` back to `previous` (the two swap); recorded on both versions."""
    from ..ml.champion import promotion_lock
    from ..ml.manual_moves import rollback as rollback_move

    client, url = _registry()
    try:
        with promotion_lock(url):
            moved = rollback_move(client, run=_who())
    except (LookupError, ValueError) as err:  # nothing to roll back to, or it cannot serve
        raise click.ClickException(str(err)) from None
    _echo_move(client, moved)


@model.command("status")
def status() -> None:
    """Show which versions hold `production` and `previous`, and the latest versions."""
    from ..platform.mlflow_store import is_database_uri, libpq_url, start_store
    from .model_status import ALIASES, RegistryStatus, render_status

    # The embedded server started when it is the default; MLflow's tables are not needed here.
    store = start_store(load_settings(), prepare=False)
    if is_database_uri(store.tracking_uri):
        import psycopg

        from .model_status import read_status_sql

        try:
            with psycopg.connect(libpq_url(store.tracking_uri)) as conn:
                found = read_status_sql(conn)
        except psycopg.errors.UndefinedTable:  # MLflow never opened this database yet
            found = RegistryStatus(dict.fromkeys(ALIASES), {}, [], {})
    else:
        from mlflow.tracking import MlflowClient

        from .model_status import read_status_client

        uri = store.tracking_uri
        found = read_status_client(MlflowClient(tracking_uri=uri, registry_uri=uri))
    for line in render_status(found):
        click.echo(line)


@model.command("ui")
@click.option(
    "--port",
    type=int,
    default=None,
    help="Default: the port of STREAMFLOW_MLFLOW_UI_URL (5000), where Dagster's links point.",
)
@click.option("--print-only", is_flag=True, help="Print the command instead of running it.")
def ui(port: int | None, print_only: bool) -> None:
    """Open the MLflow UI on this installation's store (tracking, registry, artifacts)."""
    from urllib.parse import urlsplit

    from ..platform.mlflow_store import mlflow_ui_args, mlflow_ui_command
    from .ports import ensure_port_free

    settings = load_settings()
    if port is None:
        port = urlsplit(settings.mlflow_ui_url).port or 5000
    if not print_only and not settings.mlflow_tracking_uri:  # else there is no UI to start
        ensure_port_free("127.0.0.1", port)  # `mlflow ui` listens on 127.0.0.1
    click.echo(mlflow_ui_command(settings, port=port))
    argv = mlflow_ui_args(settings, port=port)
    if print_only or argv is None:
        return
    argv[0] = str(Path(sys.executable).with_name("mlflow"))  # the venv's, even if not on PATH
    click.echo(f"MLflow UI on http://127.0.0.1:{port} (Ctrl+C stops)")
    from ..platform.mlflow_server import without_job_runner

    os.execve(argv[0], argv, without_job_runner(dict(os.environ)))
