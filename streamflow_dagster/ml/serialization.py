"""How the model is stored and loaded: skops, with the allow-list declared in this file.

MLflow 3.17 saves scikit-learn models with skops by default, and skops refuses to load any
type outside its built-in allow-list; the tree models' node containers are outside it. We
keep skops (no arbitrary code runs at load, unlike pickle or cloudpickle) and declare the two
extra types once, here. MLflow writes that list into each model's MLmodel file, but a list
read from the artifact is chosen by whoever wrote the artifact, so `load_model_dir` ignores
it and passes TRUSTED_TYPES from the code. A model that needs any other type fails to load
with a message naming it, instead of falling back to pickle.
"""

from __future__ import annotations

from pathlib import Path

import skops.io

SERIALIZATION_FORMAT = "skops"
# Plain containers of numpy arrays (tree nodes, thresholds, leaf values), built by sklearn.
TRUSTED_TYPES = (
    "sklearn.tree._tree.Tree",  # RandomForestClassifier's trees
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",  # HistGradientBoosting
)


class UntrustedModelError(ValueError):
    """A stored model that is not skops, or that needs types outside TRUSTED_TYPES."""


def pip_requirements() -> list[str]:
    """The model's runtime requirements, pinned to this environment.

    Given explicitly: MLflow's inference of them loads the model in a subprocess (seconds)
    to learn what we already know.
    """
    from importlib.metadata import version

    return [
        f"mlflow=={version('mlflow')}",
        f"scikit-learn=={version('scikit-learn')}",
        f"skops=={version('skops')}",
        f"pandas=={version('pandas')}",
        f"numpy=={version('numpy')}",
    ]


def untrusted_types(path: Path) -> list[str]:
    """Types in the skops file at `path` that TRUSTED_TYPES and skops's defaults do not cover."""
    return [t for t in skops.io.get_untrusted_types(file=path) if t not in TRUSTED_TYPES]


def load_model_dir(model_dir: Path):
    """The scikit-learn model of an MLflow model directory (downloaded from the registry)."""
    from mlflow.models import Model

    flavor = Model.load(model_dir).flavors.get("sklearn")
    if flavor is None:
        raise UntrustedModelError(f"{model_dir} is not an MLflow scikit-learn model")
    if flavor.get("serialization_format") != SERIALIZATION_FORMAT:
        raise UntrustedModelError(
            f"{model_dir} is stored as {flavor.get('serialization_format')!r}; StreamFlow only "
            f"loads {SERIALIZATION_FORMAT!r} models (pickle formats run code when loaded). "
            "Re-train the month to register it in the skops format."
        )
    path = model_dir / Path(flavor["pickled_model"]).name  # never a path outside the model
    extra = untrusted_types(path)
    if extra:
        raise UntrustedModelError(
            f"{path} needs types outside the declared allow-list: {extra}. If they come from "
            "a new scikit-learn version, review them and add them to "
            "streamflow_dagster/ml/serialization.py TRUSTED_TYPES."
        )
    return skops.io.load(path, trusted=list(TRUSTED_TYPES))
