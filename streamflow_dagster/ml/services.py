"""Which feature service's model a month registers: the services compared on one holdout.

Every month trains one model per compared feature service (churn_v1, churn_v2) on the same
rows with the same seed, so the split, and therefore the holdout users, are the same for
all. The first service is the incumbent (the seed's churn_v1). Another service replaces it
under the promotion rule (ml/promotion.py): its checks pass and its holdout AUC beats the
incumbent's by at least MIN_AUC_GAIN, the gain a model needs over the champion, for the same
reason (two equivalent models differ by ~0.01 on one holdout from sampling alone). The
decision depends only on the month's rows, so months stay order-independent.
"""

from __future__ import annotations

from dataclasses import dataclass

from .promotion import MIN_AUC_GAIN


@dataclass(frozen=True)
class ServiceResult:
    """One service's model of the month, as measured on the shared holdout."""

    service: str
    holdout_auc: float
    validation_auc: float  # of the algorithm chosen for this service
    failed_checks: tuple[str, ...] = ()

    @property
    def checks_passed(self) -> bool:
        return not self.failed_checks


@dataclass(frozen=True)
class ServiceChoice:
    service: str
    reason: str
    results: tuple[ServiceResult, ...]

    def comparison(self) -> str:
        """ "churn_v1 0.8355, churn_v2 0.8467": each service's holdout AUC, in order."""
        return ", ".join(f"{r.service} {r.holdout_auc:.4f}" for r in self.results)


def choose_service(
    results: list[ServiceResult], min_auc_gain: float = MIN_AUC_GAIN
) -> ServiceChoice:
    """The service whose model the month registers (see the module docstring)."""
    if not results:
        raise ValueError("no feature service was trained: nothing to choose from")
    incumbent, challengers = results[0], results[1:]
    passing = [r for r in challengers if r.checks_passed]
    best = max(passing, key=lambda r: r.holdout_auc, default=None)  # first listed wins a tie
    chosen, why = incumbent, _keeps(incumbent, best, min_auc_gain)
    if best is not None and not incumbent.checks_passed:
        chosen = best
        why = (
            f"{incumbent.service} failed its checks ({', '.join(incumbent.failed_checks)}); "
            f"{best.service} passed"
        )
    elif best is not None and best.holdout_auc - incumbent.holdout_auc >= min_auc_gain:
        chosen = best
        gain = best.holdout_auc - incumbent.holdout_auc
        why = (
            f"{best.service} beats {incumbent.service} by {gain:+.4f} AUC on the same holdout "
            f"(at least {min_auc_gain} needed)"
        )
    return ServiceChoice(chosen.service, why, tuple(results))


def _keeps(incumbent: ServiceResult, best: ServiceResult | None, min_auc_gain: float) -> str:
    if best is None:
        return f"{incumbent.service} is the only service whose model passed its checks"
    gain = best.holdout_auc - incumbent.holdout_auc
    return (
        f"{best.service} does not beat {incumbent.service} by {min_auc_gain} AUC on the same "
        f"holdout ({gain:+.4f}): {incumbent.service} kept"
    )
