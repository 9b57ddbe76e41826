"""Which versions can serve: loadable files, a finished run, inputs not since replaced.

A champion that cannot serve never blocks the way out:
  - its files do not load (corrupted or deleted artifact): `load_error` says why;
  - it is stale: an older version of the challenger's own month, trained on inputs that were
    replaced since (the month was re-run, which registered the challenger).
Then the decision is made against the best usable version of the earlier months instead
(`best_usable`: the highest AUC on the challenger's holdout among the newest version of each
earlier month that passed its checks, finished its run, loads, and was not taken out by hand),
and `production` moves to the winner, so the month is scored by a model that loads.
"""

from __future__ import annotations

import pandas as pd
from mlflow.entities.model_registry import ModelVersion
from mlflow.tracking import MlflowClient

from .dataset import model_features
from .promotion import Contender
from .registry import AS_OF_TAG, all_versions, contender, load_version
from .run_hygiene import unfinished_reason

# Earlier months searched for a replacement: a year of monthly models bounds the loads.
MAX_FALLBACK_MONTHS = 12


def load_or_reason(client: MlflowClient, version: int | str) -> tuple[object | None, str | None]:
    """(the model, None) or (None, why it does not load): files missing, corrupted, untrusted."""
    try:
        return load_version(client, version), None
    except Exception as err:  # any failure to load is the reason this version cannot serve
        return None, f"{type(err).__name__}: {str(err)[:300] or 'no message'}"


def stale_reason(champion: ModelVersion, challenger: ModelVersion) -> str | None:
    """Why the champion serves replaced inputs: its month was re-run as the challenger."""
    month = champion.tags.get(AS_OF_TAG)
    if not month or month != challenger.tags.get(AS_OF_TAG):
        return None
    if int(champion.version) >= int(challenger.version):
        return None
    return (
        f"it was trained on {month}'s earlier inputs; the month was re-run since "
        f"(v{challenger.version})"
    )


def best_usable(
    client: MlflowClient,
    challenger: ModelVersion,
    holdout: pd.DataFrame | None,
    exclude: set[int],
    auc_on,  # (model, holdout, features) -> AUC
) -> tuple[Contender | None, list[str]]:
    """The best usable version of months before the challenger's, and why others were skipped."""
    month = challenger.tags.get(AS_OF_TAG, "")
    newest: dict[str, ModelVersion] = {}
    for version in all_versions(client):
        as_of = version.tags.get(AS_OF_TAG)
        if not as_of or as_of >= month or int(version.version) in exclude:
            continue
        if as_of not in newest or int(version.version) > int(newest[as_of].version):
            newest[as_of] = version
    skipped, best = [], None
    for as_of in sorted(newest, reverse=True)[:MAX_FALLBACK_MONTHS]:
        version = newest[as_of]
        facts = contender(version)
        if not facts.checks_passed or facts.demoted_by_hand:
            continue
        unfinished, _ = unfinished_reason(client, version)
        if unfinished:
            skipped.append(f"v{version.version}: {unfinished}")
            continue
        model, error = load_or_reason(client, version.version)
        if model is None:
            skipped.append(f"v{version.version}: {error}")
            continue
        if holdout is not None:
            auc = auc_on(model, holdout, model_features(model))
        else:  # no holdout to compare on: the AUC it had on its own month
            auc = float(version.tags.get("holdout_auc", "nan"))
        candidate = contender(version, auc)
        if best is None or auc > best.auc:
            best = candidate
    return best, skipped
