"""The churn model's lifecycle as pure code (no Dagster): train, evaluate, register, promote, score.

- `dataset`: the model's input typing and the seeded, stratified train/validation/holdout split
- `training`: the candidate pipelines (net_service encoded inside), selection and threshold
- `evaluation`, `plots`: holdout metrics, permutation importances, ROC/PR/confusion/importance PNGs
- `checks`: the blocking checks on a registered model (AUC floor, not degenerate, loads back)
- `serialization`: the skops format with an allow-list declared here, and the safe loader
- `tracking`: one month's MLflow run: params, metrics, plots, holdout, model, registered version
- `registry`: aliases `production` / `previous`, decision records, challenger and champion lookups
- `promotion`: the champion/challenger decision, a pure function of recorded facts
- `scoring`: batch scores of a month's users into scores.churn_scores, replaced atomically
- `model_card`, `card_stats`: each version's card (description and model_card.md): intended
  use, data, metrics with 95% intervals, metrics per segment, the promotion decision
- `report_links`: http links between Dagster and MLflow, HTML reports logged to MLflow
"""

import hashlib
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def code_version() -> str:
    """A short hash of this package's source: the code that trains, checks and promotes."""
    digest = hashlib.sha256()
    for path in sorted(_PACKAGE_DIR.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]
