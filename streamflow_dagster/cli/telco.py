"""`streamflow import-telco`: the IBM Telco churn table as one month of landing files."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("import-telco")
@click.argument("csv_path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--as-of", default="2024-01-31", show_default=True, help="The month's AS_OF.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True)
def import_telco(csv_path: Path, as_of: str, out: Path) -> None:
    """Map the Telco churn CSV onto one month of landing files (usage etc. neutral)."""
    from ..landing.telco import write_telco_month  # pandas: only when the command runs

    try:
        folder = write_telco_month(csv_path, as_of, out)
    except ValueError as err:
        raise click.BadParameter(str(err)) from None
    click.echo(f"Wrote {folder} (usage, payments and support are neutral constants)")
