"""A month's health at a glance: one row per month, as `streamflow status` prints it and the
`platform_health` asset shows it (markdown). Pure: the rows are built from plain values that
monitoring/health_sources.py reads from the warehouse, the Dagster instance and the registry.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .drift import MAJOR, MODERATE, STABLE

NONE = "–"  # a figure that does not exist (yet) for the month
DRIFT_ASSET = "feature_drift"
NO_REFERENCE = "no reference"


@dataclass(frozen=True)
class CheckResult:
    """The latest evaluation of one check for one month."""

    asset: str
    check: str
    passed: bool
    severity: str  # "ERROR" or "WARN"
    blocking: bool
    max_psi: float | None = None  # drift checks: None when there was nothing to compare

    @property
    def name(self) -> str:
        return f"{self.asset} / {self.check}"


@dataclass(frozen=True)
class MonthHealth:
    as_of: str
    rows_landed: int | None = None  # rows loaded into raw over the landing tables
    rows_rejected: int | None = None  # rows quarantined (raw.quarantine)
    checks: list[CheckResult] = field(default_factory=list)
    model_version: str | None = None  # the version trained on the month
    decision: str | None = None  # its promotion decision (decision.action)
    production: bool = False  # it holds the `production` alias now
    realized: dict = field(default_factory=dict)  # realized_performance's metadata
    open_alerts: int = 0

    @property
    def failed_blocking(self) -> list[str]:
        """Failed ERROR checks that stop the month (blocking)."""
        return [
            c.name for c in self.checks if not c.passed and c.blocking and c.severity == "ERROR"
        ]

    @property
    def failed_warning(self) -> list[str]:
        """Every other failed check: warnings, and ERROR checks that do not block."""
        blocking = set(self.failed_blocking)
        return [c.name for c in self.checks if not c.passed and c.name not in blocking]


def drift_level(checks: list[CheckResult]) -> str:
    """The worst of the month's drift checks: major (ERROR), moderate (WARN), stable, no
    reference (nothing to compare with, e.g. the first month), or – (not run)."""
    drift = [c for c in checks if c.asset == DRIFT_ASSET]
    if not drift:
        return NONE
    if any(not c.passed and c.severity == "ERROR" for c in drift):
        return MAJOR
    if any(not c.passed for c in drift):
        return MODERATE
    return STABLE if any(c.max_psi is not None for c in drift) else NO_REFERENCE


def realized_auc(metadata: dict) -> str:
    """The realized AUC of the month's scores; marked when its model saw the month (in-sample)."""
    auc = metadata.get("auc")
    if auc is None:
        return NONE
    in_sample = metadata.get("scored_out_of_time") is False
    return f"{float(auc):.3f}" + (" in-sample" if in_sample else "")


def calibration(metadata: dict) -> str:
    """Predicted vs realized churn rate, once realized_performance reports calibration."""
    predicted, realized = metadata.get("predicted_churn_rate"), metadata.get("churn_rate")
    if predicted is None or realized is None:
        return NONE
    return f"{float(predicted):.1%} vs {float(realized):.1%}"


COLUMNS = (
    "AS_OF",
    "landed",
    "rejected",
    "blocking",
    "warning",
    "drift",
    "model",
    "decision",
    "realized AUC",
    "calibration",
    "alerts",
)


def cells(month: MonthHealth) -> list[str]:
    model = NONE
    if month.model_version:
        model = f"v{month.model_version}" + (" (production)" if month.production else "")
    return [
        month.as_of,
        NONE if month.rows_landed is None else f"{month.rows_landed:,}",
        NONE if month.rows_rejected is None else f"{month.rows_rejected:,}",
        str(len(month.failed_blocking)),
        str(len(month.failed_warning)),
        drift_level(month.checks),
        model,
        month.decision or NONE,
        realized_auc(month.realized),
        calibration(month.realized),
        str(month.open_alerts),
    ]


def render_text(months: list[MonthHealth]) -> list[str]:
    """An aligned table, then one line per failed check naming it (blocking first)."""
    rows = [list(COLUMNS), *(cells(m) for m in months)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    for month in months:
        lines += [
            f"! {month.as_of} blocking check failed: {name}" for name in month.failed_blocking
        ]
        lines += [f"  {month.as_of} check warned: {name}" for name in month.failed_warning]
    return lines


def render_markdown(months: list[MonthHealth]) -> str:
    """The same table in markdown, failed checks named in the two check columns."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for month in months:
        row = cells(month)
        row[3] = ", ".join(month.failed_blocking) or "0"
        row[4] = ", ".join(month.failed_warning) or "0"
        lines.append("| " + " | ".join(cell.replace("|", "/") for cell in row) + " |")
    return "\n".join(lines)
