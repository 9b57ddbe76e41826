"""The `streamflow` command line: demo, run, demo-data, db, docs."""

from __future__ import annotations

import shlex
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from ..platform.settings import load_settings


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """StreamFlow: churn features, models and serving as one Dagster asset graph.

    State lives in $STREAMFLOW_HOME (default ./.streamflow); landing files in
    $STREAMFLOW_LANDING_DIR (default $STREAMFLOW_HOME/landing).
    """
    from ..platform.settings import apply_library_env_defaults

    apply_library_env_defaults()  # bounded connects and MLflow calls, here and in children


# -- db --------------------------------------------------------------------------------
@main.group()
def db() -> None:
    """The embedded PostgreSQL under $STREAMFLOW_HOME/postgres."""


def _embedded():
    from ..platform.db import embedded_server

    settings = load_settings()
    if settings.database_url:
        raise click.UsageError(
            "STREAMFLOW_DATABASE_URL is set: StreamFlow uses that server and starts none; "
            "unset it to manage the embedded one"
        )
    return settings, embedded_server(settings)


@db.command("start")
def db_start() -> None:
    """Start the embedded server (no-op when it is running)."""
    from ..platform.db import start_warehouse
    from ..platform.embedded_pg import EmbeddedPostgresError

    settings, server = _embedded()
    try:
        url = start_warehouse(settings)
    except EmbeddedPostgresError as err:
        raise click.ClickException(str(err)) from None
    status = server.status()
    click.echo(f"PostgreSQL running (pid {status.pid}) at {url}\n  data: {status.data_dir}")


@db.command("stop")
def db_stop() -> None:
    """Stop the embedded server (and first the local deployment, whose storage it holds)."""
    from ..platform import deployment

    settings, server = _embedded()
    stopped = deployment.stop(settings)
    if stopped:
        click.echo(f"deployment stopped: {', '.join(stopped)}")
    click.echo("PostgreSQL stopped" if server.stop() else "PostgreSQL was not running")


@db.command("status")
def db_status() -> None:
    """Say whether the server is running, where, and on which port (exit 1 when down)."""
    settings = load_settings()
    if settings.database_url:
        click.echo("external PostgreSQL (STREAMFLOW_DATABASE_URL); nothing embedded to manage")
        return
    server = _embedded()[1]
    status = server.status()
    if server.repaired:
        click.echo(f"note: {server.repaired}")
    if status.running:
        click.echo(f"running: pid {status.pid}, 127.0.0.1:{status.port}, data {status.data_dir}")
    else:
        where = f", port {status.port} kept for it" if status.port else ""
        click.echo(f"stopped (data {status.data_dir}{where}); `streamflow db start` starts it")
        sys.exit(1)


@db.command("url")
def db_url() -> None:
    """Print the warehouse URL (starts the embedded server if needed), e.g. for psql."""
    from ..platform.db import start_warehouse

    click.echo(start_warehouse(load_settings()))


# -- deploy --------------------------------------------------------------------------
@main.group()
def deploy() -> None:
    """The local Dagster deployment: code server, daemon and (on request) the webserver.

    Each is its own process with a log in $STREAMFLOW_HOME/logs; runs, sensors and
    schedules go through the instance in the database `dagster` of the warehouse server.
    """


@deploy.command("start")
@click.option("--ui", "ui_port", type=int, default=None, help="Also serve the UI on this port.")
@click.option(
    "--celery-workers",
    type=click.IntRange(min=0),
    default=None,
    help="Celery workers to run here (STREAMFLOW_EXECUTOR=celery) "
    "[default: $STREAMFLOW_CELERY_WORKERS, else 2]; 0: they run elsewhere.",
)
def deploy_start(ui_port: int | None, celery_workers: int | None) -> None:
    """Start what is not running yet (no-op for what is)."""
    from ..platform.db import start_warehouse

    settings = load_settings()
    start_warehouse(settings)
    _echo_status(_start_deployment(settings, webserver_port=ui_port, celery_workers=celery_workers))


@deploy.command("stop")
def deploy_stop() -> None:
    """Stop the webserver, the daemon and the code server (runs in progress stop too)."""
    from ..platform import deployment

    stopped = deployment.stop(load_settings())
    click.echo(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")


@deploy.command("status")
def deploy_status() -> None:
    """Each process, its pid, port and log (exit 1 when the code server or daemon is down)."""
    from ..platform import deployment

    processes = deployment.status(load_settings())
    _echo_status(processes)
    core = {deployment.CODE_SERVER, deployment.DAEMON}
    # A stopped Celery worker is down too: the steps it would take wait on the broker.
    if not all(
        p.running
        for p in processes
        if p.name in core or p.name.startswith(deployment.celery.WORKER_PREFIX)
    ):
        sys.exit(1)


def _echo_status(processes) -> None:
    for p in processes:
        where = f", port {p.port}" if p.port else ""
        state = f"running (pid {p.pid}{where})" if p.running else "stopped"
        click.echo(f"{p.name:12} {state}; log {p.log}")


# -- demo data -------------------------------------------------------------------------
@main.command("demo-data")
@click.option("--users", default=7000, show_default=True, help="Users in the first month.")
@click.option("--months", default=12, show_default=True, help="Monthly AS_OF folders to write.")
@click.option("--seed", default=42, show_default=True, help="Same seed, same files.")
@click.option("--start", default="2024-01-31", show_default=True, help="First AS_OF.")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Landing folder [default: $STREAMFLOW_LANDING_DIR]",
)
def demo_data(users: int, months: int, seed: int, start: str, out: Path | None) -> None:
    """Write deterministic demo landing files: <out>/<AS_OF>/<table>.csv."""
    from ..landing.demo_data import generate_landing

    if users < 1 or months < 1:
        raise click.BadParameter("--users and --months must be at least 1")
    out = out or load_settings().landing_dir
    try:
        summaries = generate_landing(
            out, users=users, months=months, seed=seed, start=start, progress=click.echo
        )
    except ValueError as err:  # e.g. --start that is not a month end
        raise click.BadParameter(str(err)) from None
    click.echo(f"Wrote {len(summaries)} month(s) to {out}")


# -- run / demo ------------------------------------------------------------------------
def _materialize(months_window: str | None, *, home_label: str, list_alerts: bool = False) -> int:
    import dagster as dg

    from ..defs.month_runs import claim_months
    from ..landing.months import landed_months
    from ..platform import deployment
    from ..platform.db import start_warehouse
    from .prepare import prepare_code_location
    from .raised_alerts import raised_alerts, wait_for_alert_tick
    from .runner import deployment_workspace, run_job, run_months, select_months
    from .summary import model_summary, month_counts, render

    settings = load_settings()
    _report_misnamed(settings.landing_dir)
    months = landed_months(settings.landing_dir)
    if not months:
        raise click.ClickException(
            f"No month folders (named by AS_OF, e.g. 2024-01-31) in {settings.landing_dir}; "
            "drop landing files there or run `streamflow demo-data`"
        )
    try:
        months = select_months(months, months_window)
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="--months") from None
    _require_complete(settings, months)

    started = time.monotonic()
    click.echo(
        f"Starting the warehouse ({'external' if settings.database_url else 'embedded'}"
        " PostgreSQL) and the local Dagster deployment ..."
    )
    url = start_warehouse(settings)
    prepare_code_location(settings)
    with dg.DagsterInstance.get() as instance:
        # Every landed month is claimed before the daemon starts, so the landing sensor does
        # not start a second run of a month this command runs (or skips): defs/month_runs.py.
        claim_months(instance, landed_months(settings.landing_dir))
    _start_deployment(settings)
    from ..defs.jobs import MONTHLY_JOB, SETUP_JOB

    with (
        dg.DagsterInstance.get() as instance,
        deployment_workspace(instance, deployment.workspace_file(settings)) as workspace,
    ):
        click.echo(f"{len(months)} month(s): {months[0]} .. {months[-1]}")
        click.echo("Applying the Feast definitions (feature_repo/) ...")
        setup = run_job(instance, workspace, SETUP_JOB, echo=click.echo)
        if not setup.success:
            raise click.ClickException(
                f"Applying the Feast definitions failed (run {setup.run_id}): "
                f"{'; '.join(setup.failures) or 'see the run in the UI'}"
            )
        runs = run_months(instance, workspace, MONTHLY_JOB, months, echo=click.echo)
        if list_alerts:
            click.echo("Waiting for the alert sensor to read these runs ...")
            alert_tick = wait_for_alert_tick(instance, workspace, after=time.time())
    import psycopg

    with psycopg.connect(url) as conn:
        counts = month_counts(conn, months)
    from ..platform.mlflow_store import tracking_uri

    models, production = model_summary(tracking_uri(settings))
    click.echo(
        render(
            runs,
            counts,
            home=home_label,
            elapsed_s=time.monotonic() - started,
            models=models,
            production=production,
        )
    )
    if list_alerts:
        with psycopg.connect(url) as conn:
            raised = raised_alerts(conn, [r.run_id for r in runs])
        _echo_alerts(raised, alert_tick)
    # A month flagged by its drift monitor ran every step; it is red for a person, not an error.
    return 0 if all(r.success or r.flagged for r in runs) else 1


def _require_complete(settings, months: list[str]) -> None:
    """Only complete months are run (the landing rule in the README); else say what is wrong."""
    from ..landing.completeness import LandingNotReady, require_complete
    from ..platform.settings import landing_settle_seconds

    try:
        require_complete(settings.landing_dir, months, landing_settle_seconds(), echo=click.echo)
    except (LandingNotReady, ValueError) as err:
        raise click.ClickException(str(err)) from None


@contextmanager
def _database_errors() -> Iterator[None]:
    """PostgreSQL unreachable or not starting: one line saying what to do, no traceback."""
    from ..platform.db import DatabaseUnavailable, readable_failures

    try:
        with readable_failures():
            yield
    except DatabaseUnavailable as error:
        raise click.ClickException(str(error)) from None


def _echo_alerts(raised: list[tuple[str, str]], ticked: bool) -> None:
    if not ticked:
        click.echo(
            "The alert sensor did not tick after the last run (is the daemon up? "
            "`streamflow deploy status`); alerts recorded so far:",
            err=True,
        )
    click.echo(
        f"Alerts raised ({len(raised)}, in ops.alerts):" if raised else "Alerts raised: none"
    )
    for severity, message in raised:
        click.echo(f"  {severity:<6}{message}")


def _report_misnamed(landing_dir: Path) -> None:
    """Folders that are not a month's AS_OF are said, never skipped silently."""
    from ..landing.months import misnamed_months

    for name, reason in misnamed_months(landing_dir):
        click.echo(
            f"Skipping landing folder {landing_dir / name}: not a month partition: {reason}",
            err=True,
        )


def _start_deployment(
    settings, webserver_port: int | None = None, celery_workers: int | None = None
):
    """The instance and the dbt manifest ready, then the deployment's processes started."""
    from ..platform import deployment
    from .prepare import prepare_code_location

    prepare_code_location(settings)
    try:
        return deployment.start(
            settings, webserver_port=webserver_port, celery_workers=celery_workers
        )
    except deployment.DeploymentError as err:
        raise click.ClickException(f"The local Dagster deployment did not start: {err}") from None


@main.command("run")
@click.option(
    "--months",
    "months_window",
    default=None,
    metavar="A..B",
    help="AS_OF window, inclusive (e.g. 2024-01-31..2024-06-30, or one month).",
)
def run(months_window: str | None) -> None:
    """Materialize landed months through the whole graph: one Dagster run over the range."""
    with _database_errors():
        sys.exit(_materialize(months_window, home_label=str(load_settings().home)))


@main.command("demo")
@click.option("--users", default=7000, show_default=True)
@click.option("--months", default=12, show_default=True)
@click.option("--seed", default=42, show_default=True)
def demo(users: int, months: int, seed: int) -> None:
    """The main job: demo data if none landed, then every month through the graph."""
    from ..landing.months import landed_months

    settings = load_settings()
    if not landed_months(settings.landing_dir):
        click.echo(f"No landing data in {settings.landing_dir}: writing the demo months ...")
        click.get_current_context().invoke(
            demo_data,
            users=users,
            months=months,
            seed=seed,
            start="2024-01-31",
            out=settings.landing_dir,
        )
    with _database_errors():
        sys.exit(_materialize(None, home_label=str(settings.home), list_alerts=True))


# -- feast ---------------------------------------------------------------------------
@main.command("feast-env")
def feast_env_command() -> None:
    """Print the exports that let `feast plan/apply/materialize` run in feature_repo/.

    Use: eval "$(streamflow feast-env)" && cd feature_repo && feast plan
    """
    from ..features.store import feast_env
    from ..platform.db import start_warehouse

    for name, value in feast_env(start_warehouse(load_settings())).items():
        click.echo(f"export {name}={shlex.quote(value)}")


# -- docs ------------------------------------------------------------------------------
@main.command("docs")
@click.option("--port", default=8580, show_default=True, help="Port to serve the docs on.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind.")
@click.option(
    "--no-generate",
    is_flag=True,
    help="Serve the docs generated last (by this command or the dbt_docs asset) as they are.",
)
def docs(port: int, host: str, no_generate: bool) -> None:
    """Generate the dbt docs (models, columns, lineage, live catalog) and serve them.

    Generating materializes the `dbt_docs` asset (job streamflow_docs), so the run shows in
    the Dagster UI; the site is written to $STREAMFLOW_HOME/dbt-docs.
    """
    from .ports import ensure_port_free

    ensure_port_free(host, port)  # before generating: that takes a Dagster run
    settings = load_settings()
    folder = settings.dbt_docs_dir
    if not no_generate:
        _generate_docs(settings)
    if not (folder / "index.html").is_file():
        raise click.ClickException(
            f"No dbt docs in {folder}; run `streamflow docs` without --no-generate, or "
            "materialize the dbt_docs asset in the Dagster UI"
        )
    try:
        server = docs_server(folder, host, port)
    except OSError as error:  # taken while the docs were generated
        from .ports import port_problem

        raise click.UsageError(port_problem(host, port, error)) from None
    click.echo(f"dbt docs of {folder} on http://{host}:{server.server_port} (Ctrl+C stops)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        click.echo("stopped")
    finally:
        server.server_close()


def _generate_docs(settings) -> None:
    import dagster as dg

    from ..platform import deployment
    from ..platform.db import start_warehouse
    from .runner import deployment_workspace, run_job

    click.echo("Generating the dbt docs against the live warehouse ...")
    start_warehouse(settings)  # starts the embedded server when it is the one in use
    _start_deployment(settings)
    from ..defs.jobs import DOCS_JOB

    with (
        dg.DagsterInstance.get() as instance,
        deployment_workspace(instance, deployment.workspace_file(settings)) as workspace,
    ):
        result = run_job(instance, workspace, DOCS_JOB, echo=click.echo)
    if not result.success:
        raise click.ClickException(
            f"dbt docs generate failed (run {result.run_id}): "
            f"{'; '.join(result.failures) or 'see the run in the UI'}; or serve the docs "
            "generated before with --no-generate"
        )


def docs_server(folder: Path, host: str, port: int):
    """A static file server for the generated docs folder (what `dbt docs serve` does)."""
    from functools import partial
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    handler = partial(SimpleHTTPRequestHandler, directory=str(folder))
    return ThreadingHTTPServer((host, port), handler)


def _register_subcommands() -> None:
    from .mlflow_server import mlflow_server
    from .model import model
    from .serve import serve
    from .status import status
    from .telco import import_telco

    main.add_command(mlflow_server)
    main.add_command(model)
    main.add_command(serve)
    main.add_command(status)
    main.add_command(import_telco)


_register_subcommands()

if __name__ == "__main__":
    main()
