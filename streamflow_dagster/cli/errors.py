"""What the terminal says about a month's run: the platform's own words, nothing it cannot know.

Pure functions over plain values (no Dagster import), so the runner calls them whether it
executes a run in process or reads the run's events back from a Dagster deployment.

- A step failure is a chain of errors: Dagster's wrappers outside, the asset's exception
  inside them, and under that whatever library error the asset caught and explained. The
  message to print is the outermost error that is not Dagster's: the platform's own
  sentence (file, line, column, value, what to do), not pyarrow's `ArrowInvalid` it wraps.
- A month that yields no model (labels not landed, too few churners) says so in one line;
  the checks of that model, which was never trained, are not listed as failures.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Protocol

# Dagster's own exception classes wrap the asset's error (DagsterExecutionStepExecutionError,
# DagsterUserCodeExecutionError, ...): never the message a person needs.
DAGSTER_WRAPPER_PREFIX = "Dagster"
# An asset that ran but produced no model records `model_version: "none"` and a `reason`.
NO_MODEL_VERSION = "none"


class ErrorInfo(Protocol):
    """The shape of dagster's SerializableErrorInfo that matters here."""

    message: str
    cls_name: str | None
    cause: ErrorInfo | None


@dataclass(frozen=True)
class CheckFailure:
    asset: str
    check: str
    severity: str  # "ERROR" or "WARN"


@dataclass(frozen=True)
class MonthReport:
    failures: list[str]  # "step: message", one per failed step
    failed_checks: list[str]  # "asset / check (severity)"
    notes: list[str]  # one line per asset that ran and had nothing to produce, with why


def platform_message(error: ErrorInfo | None) -> str:
    """The first error of the chain, from the outside in, that is not a Dagster wrapper."""
    chain = []
    while error is not None:
        chain.append(error)
        error = error.cause
    if not chain:
        return "(no error recorded)"
    chosen = next(
        (e for e in chain if not (e.cls_name or "").startswith(DAGSTER_WRAPPER_PREFIX)),
        chain[-1],
    )
    return _without_class_name(chosen.message.strip(), chosen.cls_name)


def _without_class_name(message: str, cls_name: str | None) -> str:
    """`pkg.module.LandingFileError: users.csv, line 5` -> `users.csv, line 5`."""
    if not cls_name:
        return message
    return re.sub(rf"^(?:[\w.]+\.)?{re.escape(cls_name)}: ", "", message, count=1)


def month_report(
    step_failures: list[tuple[str, ErrorInfo | None]],
    failed_checks: list[CheckFailure],
    materializations: list[tuple[str, dict[str, Any]]],
) -> MonthReport:
    """The lines the terminal prints for one month's run.

    `materializations` are (asset, metadata as plain values): an asset whose metadata says
    `model_version: none` with a `reason` produced no model, so its checks are not failures
    of a model, and the reason is the one line to print.
    """
    no_model = {
        asset: str(metadata.get("reason") or "no reason recorded")
        for asset, metadata in materializations
        if str(metadata.get("model_version")) == NO_MODEL_VERSION
    }
    return MonthReport(
        failures=[f"{step}: {platform_message(error)}" for step, error in step_failures],
        failed_checks=[
            f"{c.asset} / {c.check} ({c.severity})"
            for c in failed_checks
            if c.asset not in no_model
        ],
        notes=[f"no {asset}: {reason}" for asset, reason in no_model.items()],
    )
