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
    from ..platform.mlflow_store import mlflow_client, start_store

    settings = load_settings()
    url = start_warehouse(settings)
    return mlflow_client(start_store(settings)), url


def _who() -> str:
    return f"cli:{getpass.getuser()}"


def _echo_move(moved) -> None:
    decision = moved.decision
    click.echo(f"{decision.action}: {decision.reason}")
    for label, contender in (("target", decision.challenger), ("replaced", decision.champion)):
        if contender is not None:
            auc = f"{contender.auc:.4f}" if contender.auc is not None else "n/a"
            click.echo(f"  {label}: v{contender.version} ({contender.as_of}), holdout AUC {auc}")
    click.echo(f"  production: v{moved.production}   previous: v{moved.previous or '-'}")
    if moved.recorded_at:
        click.echo(f"  recorded as decision.* tags at {moved.recorded_at}")


@model.command("promote")
@click.argument("version", type=int)
@click.option("--force", is_flag=True, help="Promote even if the version failed its checks.")
def promote(version: int, force: bool) -> None:
    """Move alias `production` to VERSION (the old one becomes `previous`)."""
    from ..ml.champion import promote_by_hand, promotion_lock

    client, url = _registry()
    try:
        with promotion_lock(url):
            moved = promote_by_hand(client, version, run=_who(), force=force)
    except (LookupError, ValueError) as err:
        raise click.ClickException(str(err)) from None
    _echo_move(moved)


@model.command("rollback")
def rollback() -> None:
    """Move `production` back to `previous` (the two swap); recorded on both versions."""
    from ..ml.champion import promotion_lock
    from ..ml.champion import rollback as rollback_move

    client, url = _registry()
    try:
        with promotion_lock(url):
            moved = rollback_move(client, run=_who())
    except LookupError as err:
        raise click.ClickException(str(err)) from None
    _echo_move(moved)


@model.command("status")
def status() -> None:
    """Show which versions hold `production` and `previous`, and the latest decisions."""
    from ..ml.registry import (
        AS_OF_TAG,
        CHECKS_TAG,
        PREVIOUS_ALIAS,
        PRODUCTION_ALIAS,
        alias_version,
        all_versions,
    )

    client, _ = _registry()
    for alias in (PRODUCTION_ALIAS, PREVIOUS_ALIAS):
        version = alias_version(client, alias)
        found = f"v{version.version} ({version.tags.get(AS_OF_TAG)})" if version else "none"
        click.echo(f"{alias:<11} {found}")
    versions = sorted(all_versions(client), key=lambda v: int(v.version))[-12:]
    for version in versions:
        tags = version.tags
        click.echo(
            f"  v{version.version:<4} {tags.get(AS_OF_TAG, '?'):<11} "
            f"auc {tags.get('holdout_auc', '?')[:6]:<7} checks {tags.get(CHECKS_TAG, '?'):<8} "
            f"{tags.get('decision.action', '')} {tags.get('decision.reason', '')}"
        )


@model.command("ui")
@click.option("--port", default=5000, show_default=True)
@click.option("--print-only", is_flag=True, help="Print the command instead of running it.")
def ui(port: int, print_only: bool) -> None:
    """Open the MLflow UI on this installation's store (tracking, registry, artifacts)."""
    from ..platform.mlflow_store import mlflow_ui_args, mlflow_ui_command

    settings = load_settings()
    click.echo(mlflow_ui_command(settings, port=port))
    argv = mlflow_ui_args(settings, port=port)
    if print_only or argv is None:
        return
    argv[0] = str(Path(sys.executable).with_name("mlflow"))  # the venv's, even if not on PATH
    click.echo(f"MLflow UI on http://127.0.0.1:{port} (Ctrl+C stops)")
    os.execv(argv[0], argv)
