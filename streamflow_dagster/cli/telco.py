"""`streamflow import-telco`: the IBM Telco churn table as landing months in its own spellings."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("import-telco")
@click.argument("csv_path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--as-of", default="2024-01-31", show_default=True, help="The first month's AS_OF.")
@click.option(
    "--months",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="Months to write: the first with labels, the next ones without its churners.",
)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True)
def import_telco(csv_path: Path, as_of: str, months: int, out: Path) -> None:
    """Map the Telco churn CSV onto landing months in its own spellings (usage etc. neutral).

    The first month is the table with its Churn labels; each later month has the customers
    who stayed, one month older, and no labels yet.
    """
    from ..landing.telco import write_telco_months  # pandas: only when the command runs

    try:
        folders = write_telco_months(csv_path, as_of, months, out)
    except ValueError as err:
        raise click.BadParameter(str(err)) from None
    for step, folder in enumerate(folders):
        labels = "with labels" if step == 0 else "no labels (churners of the first month left)"
        click.echo(f"Wrote {folder}: {labels}")
    click.echo("usage, payments and support are neutral constants (Telco has none)")
