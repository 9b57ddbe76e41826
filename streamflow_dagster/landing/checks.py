"""The per-month landing checks as pure decisions: pass/fail, severity and the numbers."""

from __future__ import annotations

from ..lib.checks import CheckOutcome
from .load import TableLoad

# A systematic export fault (a renamed column, a new code) rejects most rows; a few bad
# rows in a healthy export stay far below 2%. Above it, training on the accepted rows
# would be biased by what was rejected, so the month must stop before the marts.
MAX_REJECT_RATE = 0.02
# Monthly churn (~5-8%) and sign-ups move a table by well under 15% a month; a 25% swing
# means a partial or doubled export, worth a person's look but not a stop.
MAX_ROW_COUNT_CHANGE = 0.25


def reject_rate_check(load: TableLoad, max_rate: float = MAX_REJECT_RATE) -> CheckOutcome:
    if not load.landed:
        return CheckOutcome(
            True, "ERROR", f"{load.table.file} has not landed yet (optional)", {"landed": False}
        )
    metadata = {
        "rows_read": load.rows_read,
        "rows_rejected": load.rows_rejected,
        "reject_rate": round(load.reject_rate, 6),
        "threshold": max_rate,
        "sample_reasons": "\n".join(f"line {n}: {r}" for n, r in load.sample_rejections),
    }
    passed = load.reject_rate <= max_rate
    verdict = "within" if passed else "over"
    return CheckOutcome(
        passed,
        "ERROR",
        f"{load.rows_rejected} of {load.rows_read} rows rejected ({load.reject_rate:.2%}), "
        f"{verdict} the {max_rate:.0%} threshold; rejected rows are in raw.quarantine",
        metadata,
    )


def row_count_change_check(
    load: TableLoad, max_change: float = MAX_ROW_COUNT_CHANGE
) -> CheckOutcome:
    if not load.landed:
        return CheckOutcome(True, "WARN", f"{load.table.file} has not landed yet", {})
    if not load.previous_rows:
        return CheckOutcome(
            True, "WARN", "no earlier month to compare with", {"rows_loaded": load.rows_loaded}
        )
    change = (load.rows_loaded - load.previous_rows) / load.previous_rows
    return CheckOutcome(
        abs(change) <= max_change,
        "WARN",
        f"{load.rows_loaded} rows vs {load.previous_rows} in the previous month ({change:+.1%})",
        {
            "rows_loaded": load.rows_loaded,
            "previous_month_rows": load.previous_rows,
            "change": round(change, 6),
            "threshold": max_change,
        },
    )


def schema_check(load: TableLoad) -> CheckOutcome:
    if not load.landed:
        return CheckOutcome(True, "WARN", f"{load.table.file} has not landed yet", {})
    missing, extra = list(load.missing_columns), list(load.extra_columns)
    metadata = {
        "missing_columns": ", ".join(missing) or "none",
        "extra_columns": ", ".join(extra) or "none",
        "expected_columns": ", ".join(load.table.column_names),
    }
    if missing:
        return CheckOutcome(
            False, "ERROR", f"missing required column(s): {', '.join(missing)}", metadata
        )
    if extra:
        return CheckOutcome(False, "WARN", f"extra column(s) ignored: {', '.join(extra)}", metadata)
    return CheckOutcome(True, "WARN", "columns match the contract", metadata)
