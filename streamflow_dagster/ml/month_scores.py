"""A month's scores by the champion as of that month, and the later months that need new ones.

Month M is scored by the decision chain's champion after months <= M (ml/chain.py), never
by whatever holds alias `production` now. A month trained late (run after a later month, or
at the same time) can change the champion of every month after it; the later months whose
stored scores came from another version are then scored again, so every order and every
concurrency of monthly runs ends with the scores one-by-one runs in AS_OF order give.
"""

from __future__ import annotations

from datetime import date

import psycopg
from mlflow.entities.model_registry import ModelVersion
from mlflow.tracking import MlflowClient
from psycopg import sql

from ..features.specs import service_views
from .dataset import model_features
from .decision_chain import Chain
from .registry import FEATURE_SERVICE_TAG, load_version
from .scoring import SCORES_SCHEMA, SCORES_TABLE, MonthScores, score_month


def score_by(
    client: MlflowClient,
    conn: psycopg.Connection,
    store,  # feast.FeatureStore
    default_service: str,
    version: ModelVersion,
    as_of: date,
    models: dict | None = None,
) -> tuple[MonthScores, str]:
    """Month `as_of` scored by `version` through its own feature service (and its name);
    `models`: {version: model} loaded by the caller's earlier months (added to)."""
    models = {} if models is None else models
    if str(version.version) not in models:
        models[str(version.version)] = load_version(client, version.version)
    model = models[str(version.version)]
    service = version.tags.get(FEATURE_SERVICE_TAG, default_service)
    views = service_views(store, service)
    features = model_features(model)
    return score_month(conn, views, as_of, model, int(version.version), features), service


def stale_later_months(
    conn: psycopg.Connection, chain: Chain, as_of: date
) -> list[tuple[date, ModelVersion]]:
    """Months after `as_of` whose stored scores are not all their champion's, with it."""
    table = conn.execute("select to_regclass(%s)", (f"{SCORES_SCHEMA}.{SCORES_TABLE}",)).fetchone()[
        0
    ]
    if table is None:
        return []
    scored = conn.execute(
        sql.SQL(
            "select as_of, array_agg(distinct model_version) from {} where as_of > %s "
            "group by as_of order by as_of"
        ).format(sql.Identifier(SCORES_SCHEMA, SCORES_TABLE)),
        (as_of,),
    ).fetchall()
    stale = []
    for month, versions in scored:
        champion = chain.champion(month.isoformat())
        if champion is not None and versions != [int(champion.version)]:
            stale.append((month, champion))
    return stale
