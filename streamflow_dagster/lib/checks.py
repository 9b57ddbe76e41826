"""A check's verdict as plain data: landing, model and monitoring checks all return one.

Pure (no Dagster): the decisions are unit-tested on their own, and `defs/checks.py` turns
an outcome into Dagster's `AssetCheckResult` in one place.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class CheckOutcome:
    passed: bool
    severity: str  # "ERROR" or "WARN": what a failure means
    description: str
    metadata: dict = field(default_factory=dict)
