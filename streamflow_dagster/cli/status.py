"""`streamflow status [--months A..B]`: every month's health at a glance, read as it is now.

No Dagster run: the warehouse, the Dagster instance and the registry are read directly
(monitoring/health_sources.py); the table is monitoring/health.py's. The same table is the
`platform_health` asset's metadata in the UI (defs/health.py).
"""

from __future__ import annotations

import click

from ..platform.settings import load_settings


@click.command("status")
@click.option(
    "--months",
    "months_window",
    default=None,
    help="Months A..B (AS_OF or YYYY-MM; either side may be empty), or one month.",
)
def status(months_window: str | None) -> None:
    """Per month: rows landed and rejected, failed checks, drift, model and decision, realized
    AUC and calibration, open alerts."""
    import dagster as dg
    import psycopg

    from ..landing.months import landed_months
    from ..monitoring.health import render_text
    from ..monitoring.health_sources import month_health, raw_months, registry_months
    from ..platform.db import start_warehouse
    from ..platform.mlflow_store import tracking_uri
    from .prepare import use_dagster_home
    from .runner import select_months

    settings = load_settings()
    url = start_warehouse(settings)
    use_dagster_home(settings)
    with psycopg.connect(url) as conn:
        known = sorted({*landed_months(settings.landing_dir), *raw_months(conn)})
        if not known:
            raise click.ClickException(
                f"No month has landed in {settings.landing_dir} or schema raw yet: run "
                "`streamflow demo` (or drop a month and `streamflow run`)"
            )
        try:
            months = select_months(known, months_window)
        except ValueError as err:
            raise click.BadParameter(str(err), param_hint="--months") from None
        with dg.DagsterInstance.get() as instance:
            health = month_health(instance, conn, registry_months(tracking_uri(settings)), months)
    for line in render_text(health):
        click.echo(line)
    click.echo(
        "\nblocking/warning: failed checks (`! ...` names them); drift: the worst of the month's "
        "drift checks; model: the version trained on the month; alerts: open ones in ops.alerts."
    )
