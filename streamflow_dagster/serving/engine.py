"""The request path: concurrent requests are served in batches by one worker thread.

Requests wait on a future while the worker takes everything queued, reads the online features
of all their users with one query (`features.online_read`) and scores each model's users with
one `predict_proba`. One thread owns the database connection and the model calls, so 32
concurrent requests never put 32 threads into the model's OpenMP pool on a 2-core machine,
and a batch costs one round trip and one model call instead of one per request. At
concurrency 1 a batch is one request: the only added cost is the hand-over between threads.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime

import psycopg
from threadpoolctl import threadpool_limits

from ..features.online_read import OnlineReader, UserFeatures
from ..features.online_redis import OnlineStoreDown
from ..features.store import FEATURE_SERVICE
from .errors import is_store_outage, reason
from .model_slots import LoadedModel, ModelSlots
from .predict import Scored
from .split import CHALLENGER, PRODUCTION, Split

log = logging.getLogger("streamflow.serve")

# Users per batch: bounds a batch's query and model call (and so the wait of the requests
# queued behind it); 32 requests of one user, or one POST of up to this many users.
MAX_BATCH_USERS = 256
# A connection attempt or a read that takes longer means the store is not answering: the
# request gets a 503 instead of waiting for TCP's own timeouts.
CONNECT_TIMEOUT_S = 2
STATEMENT_TIMEOUT_MS = 2000
# A request never waits longer than this for its batch (a stuck worker becomes 503s).
REQUEST_TIMEOUT_S = 10.0


class OnlineStoreUnavailable(RuntimeError):
    """The online store could not be read; the message says why."""


class ModelUnavailable(RuntimeError):
    """No model is loaded for the production alias; the message says why."""


class ServingBug(RuntimeError):
    """The batch failed for a reason that is not an outage (a bug); logged with its stack."""


@dataclass(frozen=True)
class Answer:
    features: UserFeatures
    variant: str | None = None  # None: features only
    model_version: int | None = None
    scored: Scored | None = None
    model_alias: str | None = None
    model: LoadedModel | None = None  # what scored it (its threshold, month, explainer)
    feature_service: str | None = None  # the service the answering model was trained with


@dataclass
class _Job:
    user_ids: list[str]
    predict: bool
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop


class Engine:
    def __init__(
        self,
        database_url: str,
        make_reader: Callable[[], OnlineReader],
        slots: ModelSlots,
        split: Callable[[], Split],
        record: Callable[[list[tuple]], None],  # prediction log rows, handed off
        observe_store: Callable[[float], None],  # online store read seconds
    ):
        self.database_url = database_url
        self._make_reader, self.slots, self._split = make_reader, slots, split
        self._record, self._observe_store = record, observe_store
        self._reader: OnlineReader | None = None  # every applied service's features
        self._service_readers: dict[tuple[str, ...], OnlineReader] = {}
        # The month the online store holds, read when a request names a user it does not hold
        # (their 404 says which snapshot they are missing from).
        self.snapshot_as_of: date | None = None
        self._conn: psycopg.Connection | None = None
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="serve-worker", daemon=True)

    # -- the event loop's side --------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=10)
        if self._conn is not None:
            self._conn.close()

    async def lookup(self, user_ids: list[str], predict: bool) -> dict[str, Answer]:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._queue.put(_Job(user_ids, predict, future, loop))
        try:
            return await asyncio.wait_for(future, REQUEST_TIMEOUT_S)
        except TimeoutError as error:
            raise OnlineStoreUnavailable(
                f"no answer within {REQUEST_TIMEOUT_S:.0f} s (online store or model stuck)"
            ) from error

    @property
    def features(self) -> list[str] | None:
        return self._reader.features if self._reader else None

    async def check_store(self) -> str | None:
        """None when the online store answers a (zero-user) read, else the reason."""
        try:
            await self.lookup([], predict=False)
            return None
        except (OnlineStoreUnavailable, ServingBug) as error:
            return str(error)

    # -- the worker's side ------------------------------------------------------------------
    def _run(self) -> None:
        # One OpenMP thread for the model calls made on this thread (see models.threads).
        threadpool_limits(1, user_api="openmp")
        while True:
            job = self._queue.get()
            if job is None:
                return
            jobs, users = [job], len(job.user_ids)
            while users < MAX_BATCH_USERS:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._queue.put(None)  # stop after this batch
                    break
                jobs.append(more)
                users += len(more.user_ids)
            self._serve(jobs)

    def _serve(self, jobs: list[_Job]) -> None:
        ids = list(dict.fromkeys(user for job in jobs for user in job.user_ids))
        predict_jobs = [job for job in jobs if job.predict]
        # The models answering this batch, taken once: the features read are theirs even if
        # a promotion swaps a model meanwhile.
        models = {v: self.slots.model(v) for v in (PRODUCTION, CHALLENGER)} if predict_jobs else {}
        try:
            services = self._services(len(predict_jobs) < len(jobs), models)
            features = self._read(ids, services)
            scored = self._score(features, predict_jobs, models)
        except (OnlineStoreUnavailable, ModelUnavailable) as error:
            for job in jobs:
                _resolve(job, error=error)
            return
        except Exception as error:  # a bug must not kill the worker: every request gets a 500
            log.exception(f"batch of {len(ids)} user(s) failed on an internal error")
            failure = ServingBug(f"internal error: {reason(error, with_type=True)}")
            for job in jobs:
                _resolve(job, error=failure)
            return
        now = datetime.now(UTC)
        for job in jobs:
            answers = {
                user: (scored.get(user) if job.predict else None)
                or Answer(self._default_features(features[user]))
                for user in job.user_ids
            }
            # One log row per prediction in this request's answer (its users once each, as
            # the answer lists them), so 32 requests for one user batched together log 32.
            rows = [_log_row(now, user, answers[user]) for user in answers if answers[user].scored]
            _resolve(job, result=answers, on_answered=lambda rows=rows: self._record(rows))

    @staticmethod
    def _services(features_only: bool, models: dict) -> list[str]:
        """The feature services a batch reads: the seed's for /features, the answering
        models' for predictions (production's and, when loaded, the challenger's)."""
        services = [FEATURE_SERVICE] if features_only else []
        services += [loaded.scorer.feature_service for loaded in models.values() if loaded]
        return sorted(set(services))

    def _default_features(self, found: UserFeatures) -> UserFeatures:
        """What /features returns: the seed service's features (DESIGN's 14)."""
        names = self._reader.service_features.get(FEATURE_SERVICE) if self._reader else None
        return found.only(names) if names else found

    def _read(self, ids: list[str], services: list[str]) -> dict[str, UserFeatures]:
        started = time.perf_counter()
        if self._reader is None:
            try:
                self._reader = self._make_reader()
            except Exception as error:  # Feast's registry read (SQLAlchemy, ...)
                if not is_store_outage(error):
                    raise
                raise OnlineStoreUnavailable(
                    f"feature service unavailable: {reason(error)}"
                ) from None
        reader = self._reader_of(services)
        try:
            # PostgreSQL's reader reads with this connection; Redis's needs none.
            conn = self._connected() if getattr(reader, "needs_database", True) else None
            result = reader.read(conn, ids)
            if any(not found.values for found in result.values()):
                self.snapshot_as_of = reader.online_month(conn)
        except OnlineStoreDown as error:  # Redis
            raise OnlineStoreUnavailable(f"online store unreachable: {error}") from None
        except psycopg.Error as error:
            if not is_store_outage(error):  # e.g. a query the database rejects: a bug
                raise
            self._drop_connection()
            raise OnlineStoreUnavailable(f"online store unreachable: {reason(error)}") from None
        self._observe_store(time.perf_counter() - started)
        return result

    def _reader_of(self, services: list[str]) -> OnlineReader:
        """The reader of these services' views only (a v1 model reads v1's four views)."""
        known = self._reader.service_features
        if not services or any(service not in known for service in services):
            return self._reader  # every applied service's features: whatever a model needs
        key = tuple(services)
        if key not in self._service_readers:
            self._service_readers[key] = self._reader.for_services(services)
        return self._service_readers[key]

    def _score(
        self, features: dict[str, UserFeatures], jobs: list[_Job], models: dict
    ) -> dict[str, Answer]:
        if not jobs:
            return {}
        split = self._split()
        if models.get(PRODUCTION) is None:
            state = self.slots.states[PRODUCTION]
            reason = state.error or self.slots.registry_error or "still loading"
            raise ModelUnavailable(f"no production model loaded: {reason}")
        by_variant: dict[str, list[str]] = {}
        answers, model_features = {}, {}
        for user in dict.fromkeys(u for job in jobs for u in job.user_ids):
            variant = split.variant(user)
            if variant == CHALLENGER and models.get(CHALLENGER) is None:
                variant = PRODUCTION  # challenger not loaded (yet): production answers
            # The features of the model's own service: those it needs, in its order.
            model_features[user] = features[user].only(models[variant].scorer.features)
            if model_features[user].complete:
                by_variant.setdefault(variant, []).append(user)
            else:  # answered 404 with the features this model misses
                answers[user] = Answer(model_features[user])
        for variant, users in by_variant.items():
            loaded = models[variant]
            results = loaded.scorer.score([model_features[u].values for u in users])
            for user, result in zip(users, results, strict=True):
                answers[user] = Answer(
                    model_features[user],
                    variant,
                    loaded.version,
                    result,
                    loaded.alias,
                    loaded,
                    loaded.scorer.feature_service,
                )
        return answers

    def _connected(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            try:
                self._conn = psycopg.connect(
                    self.database_url,
                    autocommit=True,
                    connect_timeout=CONNECT_TIMEOUT_S,
                    options=f"-c statement_timeout={STATEMENT_TIMEOUT_MS}",
                )
            except psycopg.Error as error:
                raise OnlineStoreUnavailable(f"online store unreachable: {reason(error)}") from None
        return self._conn

    def _drop_connection(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except psycopg.Error:
                pass  # already broken: closing is only tidying up
            self._conn = None


def _log_row(now: datetime, user: str, answer: Answer) -> tuple:
    return (
        now,
        user,
        answer.variant,
        answer.model_alias,
        answer.model_version,
        answer.scored.churn_probability,
        bool(answer.scored.prediction),
        answer.features.event_ts,
        answer.features.values,  # what the answer used, for the serving_skew monitor
    )


def _resolve(
    job: _Job,
    result=None,
    error: BaseException | None = None,
    on_answered: Callable[[], None] | None = None,
) -> None:
    def settle() -> None:
        if job.future.done():  # the request timed out or was cancelled: no answer, no log
            return
        if error is not None:
            job.future.set_exception(error)
            return
        job.future.set_result(result)
        if on_answered is not None:  # logged only for a request that gets its answer
            on_answered()

    job.loop.call_soon_threadsafe(settle)
