"""Whether a version's model files load: a version that does not load never serves.

A champion whose files broke never blocks the way out: the decision chain
(ml/decision_chain.py) decides its challenger as if there were no champion and says why, and
the manual moves (ml/manual_moves.py) refuse to move `production` onto it.
"""

from __future__ import annotations

from mlflow.tracking import MlflowClient

from .registry import load_version


def load_or_reason(client: MlflowClient, version: int | str) -> tuple[object | None, str | None]:
    """(the model, None) or (None, why it does not load): files missing, corrupted, untrusted."""
    try:
        return load_version(client, version), None
    except Exception as err:  # any failure to load is the reason this version cannot serve
        return None, f"{type(err).__name__}: {str(err)[:300] or 'no message'}"
