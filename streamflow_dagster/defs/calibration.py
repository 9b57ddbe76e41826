"""The calibration part of `realized_performance`: its check, metadata and report.

Kept apart from defs/monitors.py so that asset stays readable; the figures come from the pure
`monitoring.calibration` and the page from `monitoring.calibration_report`.
"""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
import numpy as np

from ..lib.checks import CheckOutcome
from ..monitoring.calibration import CALIBRATION_MARGIN_SE, MIN_RATE_GAP
from ..platform.settings import load_settings
from .checks import to_check_result
from .partitions import AS_OF_PARTITIONS

CALIBRATION_CHECK = "calibration_within_margin"
CALIBRATION_CHECK_SPEC = dg.AssetCheckSpec(
    CALIBRATION_CHECK,
    asset="realized_performance",
    description=(
        "The month's predicted churn rate (mean score) is within max("
        f"{MIN_RATE_GAP * 100:g} points, {CALIBRATION_MARGIN_SE:g} standard errors) of the "
        "realized churn rate. The s.e. is the one calibrated scores would give: each user "
        "churning with their own probability p, the rate's s.e. is sqrt(sum p(1-p))/n, so a "
        f"{CALIBRATION_MARGIN_SE:g}-s.e. gap happens by chance in ~0.3% of calibrated months; "
        f"the {MIN_RATE_GAP * 100:g}-point floor keeps large months from alerting on gaps too "
        "small to change a retention plan. Brier score and a 10-bin reliability curve are in "
        "the metadata and the report; warns, never blocks."
    ),
    partitions_def=AS_OF_PARTITIONS,
)


def calibration_report_path(as_of: str):
    return load_settings().home / "reports" / "calibration" / f"{as_of}.html"


def calibration_results(
    as_of: str, labels: np.ndarray, scores: np.ndarray, model_version: str, notes: list[str]
) -> tuple[dict, dg.AssetCheckResult, str | None]:
    """The asset's calibration metadata, the check's result for the month's labelled scores
    and the report's HTML (None: nothing to report); the caller logs the page to MLflow."""
    from ..monitoring.calibration import calibration, calibration_outcome
    from ..monitoring.calibration_report import (
        calibration_report_html,
        reliability_png,
        reliability_table_md,
    )
    from ..monitoring.report import png_markdown, write_report

    if labels.size == 0:
        outcome = CheckOutcome(
            False,
            "WARN",
            "No scored user of the month has a label: nothing to calibrate against (check the "
            "user ids of labels.csv against the scored month)",
            {"rows": 0},
        )
        return {}, to_check_result(CALIBRATION_CHECK, outcome), None
    result = calibration(labels, scores)
    outcome = calibration_outcome(result, model_version)
    png = reliability_png(result, f"Reliability {as_of} (v{model_version})")
    page = calibration_report_html(as_of, result, outcome.description, notes, png)
    report = write_report(calibration_report_path(as_of), page)
    _replace_bytes(report.with_suffix(".png"), png)
    metadata = {
        "predicted_churn_rate": round(result.predicted_rate, 4),
        "brier": round(result.brier, 4),
        "calibration_gap": round(result.rate_gap, 4),
        "reliability": dg.MetadataValue.md(reliability_table_md(result)),
        "reliability_curve": dg.MetadataValue.md(png_markdown(png, "reliability curve")),
        "calibration_report": dg.MetadataValue.path(str(report)),
    }
    check = to_check_result(
        CALIBRATION_CHECK,
        CheckOutcome(
            outcome.passed,
            outcome.severity,
            " ".join([outcome.description, *notes]),
            {**outcome.metadata, "report": dg.MetadataValue.path(str(report))},
        ),
    )
    return metadata, check, page


def _replace_bytes(path: Path, data: bytes) -> None:
    """Write atomically, as write_report does: a reader never sees half a PNG."""
    partial = path.with_name(f".{path.name}.partial")
    partial.write_bytes(data)
    os.replace(partial, path)
