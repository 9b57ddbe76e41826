"""The API's moving parts, wired together: online reads, models, split, prediction log, metrics.

`Service.from_installation()` builds it for this installation (the embedded PostgreSQL or
STREAMFLOW_DATABASE_URL, MLflow in PostgreSQL or MLFLOW_TRACKING_URI); tests build it with
their own database and registry.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

from ..features.online_read import OnlineReader
from ..features.online_redis import RedisOnlineReader
from ..ml.registry import PRODUCTION_ALIAS
from .engine import Engine
from .metrics import Metrics, build_metrics
from .model_slots import ModelSlots, Watcher, default_aliases
from .predict import Scorer, make_scorer
from .predlog import PredictionLog
from .split import CHALLENGER, PRODUCTION, Split

log = logging.getLogger("streamflow.serve")


def feature_reader(database_url: str) -> OnlineReader | RedisOnlineReader:
    """The direct reader of every feature service applied in Feast's registry (churn_v1
    first): a model reads the views of the service it was trained with (`for_services`).
    It reads the configured online store: PostgreSQL's tables, or Redis (pipelined HMGET)."""
    from ..features.online_store import is_redis, redis_url
    from ..features.specs import merge_views, service_views
    from ..features.store import FEATURE_SERVICE, feature_store

    store = feature_store(database_url)
    applied = sorted(s.name for s in store.list_feature_services() if s.name != FEATURE_SERVICE)
    views = {name: service_views(store, name) for name in [FEATURE_SERVICE, *applied]}
    merged = merge_views(list(views.values()))
    service_features = {
        name: [f for view in specs for f in view.feature_names] for name, specs in views.items()
    }
    if is_redis(store):
        return RedisOnlineReader(merged, redis_url(store), store.project, service_features)
    return OnlineReader(merged, store.config.online_store.db_schema, service_features)


class MlflowAliases:
    """Alias -> version and version -> model, against the MLflow registry (client made lazily,
    so the API starts, and reports 503, while the registry's database is away)."""

    def __init__(self, tracking_uri: str):
        self.tracking_uri = tracking_uri
        self._client = None

    def client(self):
        if self._client is None:
            from mlflow.tracking import MlflowClient

            self._client = MlflowClient(
                tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri
            )
        return self._client

    def resolve(self, alias: str) -> int | None:
        from ..ml.registry import alias_version

        version = alias_version(self.client(), alias)
        return int(version.version) if version else None

    def load(self, version: int) -> Scorer:
        """The version's model, verified on its holdout rows for the compiled path, with the
        feature service it was trained with (its tag; churn_v1 for a version without one)."""
        from ..features.store import FEATURE_SERVICE
        from ..ml.dataset import model_features
        from ..ml.registry import (
            AS_OF_TAG,
            FEATURE_SERVICE_TAG,
            get_version,
            load_holdout,
            load_version,
        )

        model = load_version(self.client(), version)
        features = model_features(model)
        registered = get_version(self.client(), version)
        service = registered.tags.get(FEATURE_SERVICE_TAG) or FEATURE_SERVICE
        try:
            holdout = load_holdout(self.client(), registered)
            rows = holdout[features].astype(object).where(holdout[features].notna(), None)
            sample = rows.to_dict("records")
        except LookupError as error:  # no holdout logged: scikit-learn's path serves it
            log.warning(f"v{version}: {error}")
            sample = []
        scorer = make_scorer(model, features, sample, registered.tags.get(AS_OF_TAG))
        return replace(scorer, feature_service=service)


class Service:
    def __init__(
        self,
        database_url: str,
        aliases: MlflowAliases,
        split: Split,
        reload_seconds: float,
        admin_token: str | None,
        production_alias: str = PRODUCTION_ALIAS,
        spool_dir: Path | None = None,  # prediction log rows kept over a stop during an outage
        workers: int = 1,  # API processes serving the same port (`streamflow serve --workers`)
        metrics_dir: Path | None = None,  # their Prometheus multiprocess files
    ):
        self.metrics: Metrics = build_metrics(metrics_dir)
        self.workers = workers
        self.admin_token = admin_token
        self._split = split
        self._split_lock = threading.Lock()
        self.predictions_log = PredictionLog(
            database_url, self.metrics.log_dropped.inc, spool_dir=spool_dir
        )
        self.slots = ModelSlots(
            aliases.resolve,
            aliases.load,
            lambda: self.engine.features,
            default_aliases(production_alias, split.challenger_alias),
        )
        self.engine = Engine(
            database_url,
            lambda: feature_reader(database_url),
            self.slots,
            lambda: self._split,
            self._record,
            self.metrics.store_latency.observe,
        )
        self.watcher = Watcher(self.slots, reload_seconds, on_refresh=self.update_model_gauges)

    @classmethod
    def from_installation(cls) -> Service:
        from ..platform.db import start_warehouse
        from ..platform.mlflow_store import start_store
        from ..platform.settings import load_serve_settings, load_settings

        settings, serve = load_settings(), load_serve_settings()
        database_url = start_warehouse(settings)  # the embedded server, when it is the default
        # Its database, not its tables: the registry is read lazily (503 until it answers).
        mlflow_store = start_store(settings, prepare=False)
        return cls(
            database_url,
            MlflowAliases(mlflow_store.tracking_uri),
            Split(serve.challenger_alias, serve.challenger_share),
            serve.reload_seconds,
            serve.admin_token,
            spool_dir=settings.prediction_spool_dir,
            workers=serve.workers,
            metrics_dir=settings.serve_metrics_dir if serve.workers > 1 else None,
        )

    @property
    def split(self) -> Split:
        return self._split

    def set_split(self, split: Split) -> None:
        with self._split_lock:
            self.slots.set_challenger(split.challenger_alias)
            self._split = split
        self.watcher.wake()

    def start(self) -> None:
        self.predictions_log.start()
        self.engine.start()
        self.watcher.start()

    async def warm_up(self, timeout_s: float) -> None:
        """Wait (at most `timeout_s`) for the store's first read and the models' first load."""
        started = time.monotonic()
        store_error = await self.engine.check_store()  # also reads the feature service
        if store_error:
            log.warning(f"starting without the online store: {store_error}")
        left = max(0.0, timeout_s - (time.monotonic() - started))
        if not await asyncio.to_thread(self.watcher.first_refresh_done.wait, left):
            log.warning(
                f"no production model after {timeout_s:.0f} s: accepting requests; "
                "/ready says 'still loading' until it is loaded"
            )
            return
        production = self.slots.states[PRODUCTION]
        if production.loaded is None:
            log.warning(
                "starting without a production model: "
                f"{production.error or self.slots.registry_error}"
            )

    def stop(self) -> None:
        self.watcher.stop()
        self.engine.stop()
        self.predictions_log.stop()

    def update_model_gauges(self) -> None:
        for variant, state in self.slots.states.items():
            alias = self.slots.aliases.get(variant, "")
            version = state.loaded.version if state.loaded else 0
            self.metrics.model_version.labels(variant, alias).set(version)
        if CHALLENGER not in self.slots.states:
            if self.metrics.multiprocess_dir is not None:  # no removal there: 0 = none loaded
                for sample in list(self.metrics.model_version.collect()[0].samples):
                    if sample.labels.get("variant") == CHALLENGER:
                        self.metrics.model_version.labels(CHALLENGER, sample.labels["alias"]).set(0)
                return
            for sample in list(self.metrics.model_version.collect()[0].samples):
                if sample.labels.get("variant") == CHALLENGER:
                    self.metrics.model_version.remove(CHALLENGER, sample.labels["alias"])

    def _record(self, rows: list[tuple]) -> None:
        self.predictions_log.record(rows)
        for (variant, version), count in Counter((row[2], row[4]) for row in rows).items():
            self.metrics.predictions.labels(variant, str(version)).inc(count)
