"""Automation: a month that lands complete becomes a partition and runs through the graph."""

from pathlib import Path

import dagster as dg

from .landing.contract import LANDING_TABLES
from .partitions import AS_OF_PARTITIONS
from .runner import landed_months

MONTHLY_JOB = "streamflow_monthly"
REQUIRED_FILES = tuple(t.file for t in LANDING_TABLES if t.required)


def complete_months(landing_dir: Path) -> list[str]:
    """Landed months whose required files are all there (labels may come later)."""
    return [
        month
        for month in landed_months(landing_dir)
        if all((landing_dir / month / name).is_file() for name in REQUIRED_FILES)
    ]


def new_months(landing_dir: Path, known: set[str]) -> list[str]:
    return [m for m in complete_months(landing_dir) if m not in known]


def build_landing_sensor(landing_dir: Path) -> dg.SensorDefinition:
    @dg.sensor(
        name="landing_sensor",
        job_name=MONTHLY_JOB,
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Starts a month through the graph once its files are complete in "
        f"{landing_dir}.",
    )
    def landing_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        """New complete month in the landing folder -> new AS_OF partition and one run."""
        known = set(context.instance.get_dynamic_partitions(AS_OF_PARTITIONS.name))
        months = new_months(landing_dir, known)
        if not months:
            return dg.SensorResult(skip_reason=f"no new complete month in {landing_dir}")
        context.log.info(f"new landed month(s): {', '.join(months)}")
        return dg.SensorResult(
            run_requests=[dg.RunRequest(partition_key=m, run_key=f"landed-{m}") for m in months],
            dynamic_partitions_requests=[AS_OF_PARTITIONS.build_add_request(months)],
        )

    return landing_sensor
