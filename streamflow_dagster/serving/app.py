"""The online API (FastAPI): features and churn predictions, /ready, /metrics, admin calls.

Responses are built as plain dicts and returned as JSONResponse (the pydantic models below
document them in OpenAPI without a second validation pass on every request). Every error is
JSON `{"error": ...}` with a status that says what happened: 404 missing features, 422 a
malformed request, 401/403 an admin call without the right token, 503 a store or model that
is not there, 500 a bug (logged with its stack trace); never a stack trace in a response.
"""

from __future__ import annotations

import asyncio
import gc
import hmac
import logging
import os
import time
from contextlib import asynccontextmanager
from datetime import date
from typing import Annotated, Any

from fastapi import Body, FastAPI, Header, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from .docs import serve_docs
from .engine import Answer, ModelUnavailable, OnlineStoreUnavailable, ServingBug
from .http_methods import HeadAsGet, allow_header
from .metrics import MEDIA_TYPE
from .reasons import ExplanationOut, explanations
from .service import Service
from .split import PRODUCTION, Split

log = logging.getLogger("streamflow.serve")

# Ids are opaque text; the limits only keep garbage out of SQL parameters and the logs.
MAX_USER_ID_LENGTH = 128
USER_ID_PATTERN = r"^[^\x00-\x1f\x7f]+$"  # no control characters
# Users per POST /predict: bounds one request's share of a batch.
MAX_USERS_PER_REQUEST = 256
# Longest the API waits at start for the Production model and the store before opening its
# port anyway (then /ready says what is still missing). Loading and verifying a model takes
# a few seconds; a registry that does not answer fails fast.
STARTUP_WAIT_S = 120.0
# Decimals of a probability (and the threshold) in an answer: 1e-4 is finer than any
# calibration a churn model has; `prediction` compares the unrounded probability.
PROBABILITY_DECIMALS = 4

Explain = Annotated[
    bool,
    Query(
        description="Also return the prediction's top feature contributions (tree models): "
        "exact path contributions that add up, with `base_value`, to the model's raw output"
    ),
]

UserId = Annotated[
    str,
    Path(
        min_length=1,
        max_length=MAX_USER_ID_LENGTH,
        pattern=USER_ID_PATTERN,
        description="The user's id (join key `user_id`).",
        examples=["u0000042"],
    ),
]


class PredictionOut(BaseModel):
    user_id: str
    prediction: int = Field(description="1: predicted to churn in the month after `as_of`")
    churn_probability: float = Field(description="Rounded to 4 decimals")
    model_version: int
    features_used: dict[str, Any] = Field(
        description="The feature values the model read: its feature service's (14 for churn_v1)"
    )
    as_of: str | None = Field(description="AS_OF of the online features")
    decision_threshold: float | None = Field(
        description="`prediction` is 1 when the (unrounded) probability is at least this"
    )
    model_as_of: str | None = Field(description="AS_OF of the month the model was trained on")
    feature_service: str = Field(
        description="The Feast feature service the model was trained with, and read through",
        examples=["churn_v1", "churn_v2"],
    )
    variant: str | None = Field(None, description="A/B variant, present while a split is active")
    explanation: ExplanationOut | None = Field(None, description="With `explain=true` only")


class MissingOut(BaseModel):
    error: str = Field(
        examples=[
            "Missing features for user_id=u0000042",
            "user_id=u0000042 is not in the online snapshot of AS_OF 2024-12-31",
        ]
    )
    missing_features: list[str] | None = Field(
        None, description="The features without an online value (a user with some of them)"
    )
    as_of: str | None = Field(
        None, description="The online snapshot's AS_OF (a user absent from it altogether)"
    )


class FeaturesOut(BaseModel):
    user_id: str
    as_of: str | None
    features: dict[str, Any]


class BatchIn(BaseModel):
    user_ids: list[
        Annotated[str, Field(min_length=1, max_length=MAX_USER_ID_LENGTH, pattern=USER_ID_PATTERN)]
    ] = Field(min_length=1, max_length=MAX_USERS_PER_REQUEST)
    explain: bool = Field(False, description="As the `explain` query parameter")


class BatchOut(BaseModel):
    predictions: list[PredictionOut]
    missing: list[dict[str, Any]] = Field(
        description="One entry per user without (all) features: user_id, error, and "
        "missing_features (some features online) or as_of (not in the online snapshot)"
    )


class SplitIn(BaseModel):
    challenger_alias: str | None = Field(
        None, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$"
    )
    challenger_share: float = Field(0.0, ge=0.0, le=1.0)


class ErrorOut(BaseModel):
    error: str


def create_app(service: Service, startup_wait_s: float = STARTUP_WAIT_S) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI):
        service.start()
        # Uvicorn opens the port only after this: a client that calls as soon as it answers
        # finds the Production model and the store loaded (or /ready naming why not).
        await service.warm_up(startup_wait_s)
        # Everything imported and built so far (Feast, MLflow, scikit-learn: millions of
        # objects) lives as long as the process: out of the collector's way, a full
        # collection no longer stalls every request in flight for a few hundred ms.
        gc.freeze()
        yield
        service.stop()

    app = FastAPI(
        title="StreamFlow online API",
        description="Churn features and predictions from the Feast online store and the "
        "Production model (`models:/streamflow_churn@production`).",
        version="1",
        lifespan=lifespan,
        docs_url=None,  # served from local files by serve_docs (FastAPI's loads a CDN)
        redoc_url=None,
    )
    app.add_middleware(MetricsMiddleware, service=service)
    app.add_middleware(HeadAsGet)
    serve_docs(app)
    _error_handlers(app)
    failures = {
        503: {"model": ErrorOut, "description": "Online store or model unavailable"},
        500: {"model": ErrorOut, "description": "Internal error (a bug, logged by the API)"},
    }
    missing = {404: {"model": MissingOut, "description": "No (or partial) online features"}}

    @app.get("/health", summary="Liveness: the process answers")
    async def health() -> dict:
        return {"status": "ok"}

    @app.get("/ready", summary="Model loaded and online store reachable", responses=failures)
    async def ready() -> JSONResponse:
        store_error = await service.engine.check_store()
        models = {
            variant: {
                "alias": service.slots.aliases.get(variant),
                "version": state.loaded.version if state.loaded else None,
                "registry_version": state.target_version,
                "error": state.error,
            }
            for variant, state in service.slots.states.items()
        }
        service.update_model_gauges()
        reasons = [store_error] if store_error else []
        if service.slots.model(PRODUCTION) is None:
            production = service.slots.states[PRODUCTION]
            loading = (
                "still loading"
                if service.watcher.first_refresh_done.is_set()
                else "still loading (waiting for the model registry's first answer)"
            )
            reasons.append(
                "no production model loaded: "
                f"{production.error or service.slots.registry_error or loading}"
            )
        # Degraded but serving: a newer version failed to load, or the registry is away.
        warnings = [m["error"] for m in models.values() if m["error"] and m["version"]]
        if service.slots.registry_error and service.slots.model(PRODUCTION):
            warnings.append(service.slots.registry_error)
        body = {
            "status": "not_ready" if reasons else ("degraded" if warnings else "ready"),
            "online_store": store_error or "ok",
            "models": models,
            "split": _split_body(service.split),
            "reasons": reasons,
            "warnings": warnings,
            "prediction_log": {
                "buffered_rows": service.predictions_log.buffered,
                "error": service.predictions_log.last_error,
            },
            "worker": {"pid": os.getpid(), "workers": service.workers},
        }
        return JSONResponse(body, status_code=503 if reasons else 200)

    @app.get(
        "/features/{user_id}",
        response_model=FeaturesOut,
        responses={**missing, **failures},
        summary="The feature service's online values for one user",
    )
    async def features(user_id: UserId) -> JSONResponse:
        answer = (await _lookup(service, [user_id], predict=False))[user_id]
        if not answer.features.complete:
            return _missing(answer, service.engine.snapshot_as_of)
        return JSONResponse(
            {
                "user_id": user_id,
                "as_of": _as_of(answer),
                "features": answer.features.values,
            }
        )

    @app.get(
        "/predict/{user_id}",
        response_model=PredictionOut,
        responses={**missing, **failures},
        summary="Churn prediction for one user with the Production model",
    )
    async def predict_one(user_id: UserId, explain: Explain = False) -> JSONResponse:
        answer = (await _lookup(service, [user_id], predict=True))[user_id]
        if answer.scored is None:
            return _missing(answer, service.engine.snapshot_as_of)
        reasons = explanations({user_id: answer}) if explain else {}
        return JSONResponse(_prediction(user_id, answer, service.split.active, reasons))

    @app.post(
        "/predict",
        response_model=BatchOut,
        responses=failures,
        summary="Churn predictions for a list of users",
    )
    async def predict_many(batch: BatchIn, explain: Explain = False) -> JSONResponse:
        answers = await _lookup(service, batch.user_ids, predict=True)
        active = service.split.active
        reasons = explanations(answers) if explain or batch.explain else {}
        predictions, missing_users = [], []
        for user_id in dict.fromkeys(batch.user_ids):
            answer = answers[user_id]
            if answer.scored is None:
                missing_users.append(
                    {"user_id": user_id, **_missing_body(answer, service.engine.snapshot_as_of)}
                )
            else:
                predictions.append(_prediction(user_id, answer, active, reasons))
        return JSONResponse({"predictions": predictions, "missing": missing_users})

    # Empty ids are malformed requests (422), not unknown routes.
    for prefix in ("features", "predict"):
        app.add_api_route(f"/{prefix}/", _empty_id, methods=["GET"], include_in_schema=False)

    @app.post(
        "/admin/reload",
        summary="Re-read the model aliases now (needs the API token)",
        responses={401: {"model": ErrorOut}, 403: {"model": ErrorOut}},
    )
    async def reload(authorization: Annotated[str | None, Header()] = None) -> JSONResponse:
        denied = _check_token(service, authorization)
        if denied:
            return denied
        changes = await asyncio.to_thread(service.slots.refresh)
        service.update_model_gauges()
        log.info(f"manual reload: {changes or 'no change'}")
        # Under several workers this one reloads now; the others at their next alias check.
        return JSONResponse(
            {
                "changed": changes,
                "models": _versions(service),
                "worker_pid": os.getpid(),
                "workers": service.workers,
            }
        )

    @app.put(
        "/admin/split",
        summary="Set the A/B split: challenger alias and its traffic share (needs the token)",
        responses={401: {"model": ErrorOut}, 403: {"model": ErrorOut}},
    )
    async def set_split(
        split: Annotated[SplitIn, Body()],
        authorization: Annotated[str | None, Header()] = None,
    ) -> JSONResponse:
        denied = _check_token(service, authorization)
        if denied:
            return denied
        if service.workers > 1:  # each worker holds its own split: one call reaches one worker
            return JSONResponse(
                {
                    "error": f"The split cannot change at run time under {service.workers} "
                    "workers (a call reaches one of them): set STREAMFLOW_SERVE_CHALLENGER_ALIAS "
                    "and STREAMFLOW_SERVE_CHALLENGER_SHARE and restart, or serve with --workers 1"
                },
                status_code=409,
            )
        service.set_split(Split(split.challenger_alias, split.challenger_share))
        log.info(f"split changed: {_split_body(service.split)}")
        return JSONResponse({"split": _split_body(service.split)})

    @app.get("/metrics", summary="Prometheus metrics", include_in_schema=True)
    async def metrics() -> Response:
        service.update_model_gauges()
        return Response(service.metrics.exposition(), media_type=MEDIA_TYPE)

    return app


async def _lookup(service: Service, user_ids: list[str], predict: bool) -> dict[str, Answer]:
    try:
        return await service.engine.lookup(user_ids, predict)
    except (OnlineStoreUnavailable, ModelUnavailable) as error:
        raise _Unavailable(str(error)) from None
    except ServingBug as error:  # the worker logged it with its stack trace
        raise _Internal(str(error)) from None


class _Unavailable(Exception):
    """A dependency is away: answered 503 with the reason."""


class _Internal(Exception):
    """A bug while serving (already logged with its stack trace): answered 500, no stack."""


async def _empty_id() -> JSONResponse:
    return JSONResponse({"error": "Invalid user_id: it is empty"}, status_code=422)


def _prediction(user_id: str, answer: Answer, split_active: bool, reasons: dict) -> dict:
    scorer = answer.model.scorer
    threshold = scorer.threshold
    body = {
        "user_id": user_id,
        "prediction": answer.scored.prediction,
        "churn_probability": round(answer.scored.churn_probability, PROBABILITY_DECIMALS),
        "model_version": answer.model_version,
        "features_used": answer.features.values,
        "as_of": _as_of(answer),
        "decision_threshold": None if threshold is None else round(threshold, PROBABILITY_DECIMALS),
        "model_as_of": scorer.trained_as_of,
        "feature_service": answer.feature_service,
    }
    if split_active:
        body["variant"] = answer.variant
    if user_id in reasons:
        body["explanation"] = reasons[user_id]
    return body


def _as_of(answer: Answer) -> str | None:
    return answer.features.event_ts.date().isoformat() if answer.features.event_ts else None


def _missing_body(answer: Answer, snapshot: date | None) -> dict:
    user_id = answer.features.user_id
    if answer.features.values:  # some features online, not all: name the missing ones
        return {
            "error": f"Missing features for user_id={user_id}",
            "missing_features": answer.features.missing,
        }
    if snapshot is None:
        return {"error": f"user_id={user_id}: the online store holds no month yet", "as_of": None}
    return {
        "error": f"user_id={user_id} is not in the online snapshot of AS_OF {snapshot}",
        "as_of": snapshot.isoformat(),
    }


def _missing(answer: Answer, snapshot: date | None) -> JSONResponse:
    return JSONResponse(_missing_body(answer, snapshot), status_code=404)


def _split_body(split: Split) -> dict:
    return {
        "active": split.active,
        "challenger_alias": split.challenger_alias,
        "challenger_share": split.challenger_share,
    }


def _versions(service: Service) -> dict:
    return {
        variant: state.loaded.version if state.loaded else None
        for variant, state in service.slots.states.items()
    }


def _check_token(service: Service, authorization: str | None) -> JSONResponse | None:
    if not service.admin_token:
        return JSONResponse(
            {"error": "State-changing calls are disabled: start the API with STREAMFLOW_API_TOKEN"},
            status_code=403,
        )
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        token.encode(), service.admin_token.encode()
    ):
        return JSONResponse(
            {"error": "Missing or wrong token: send 'Authorization: Bearer <token>'"},
            status_code=401,
        )
    return None


def _error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        problems = [
            {"where": ".".join(str(part) for part in item["loc"]), "problem": item["msg"]}
            for item in error.errors()
        ]
        summary = "; ".join(f"{p['where']}: {p['problem']}" for p in problems)
        return JSONResponse({"error": f"Invalid request: {summary}", "problems": problems}, 422)

    @app.exception_handler(_Unavailable)
    async def unavailable(request: Request, error: _Unavailable) -> JSONResponse:
        return JSONResponse({"error": str(error)}, status_code=503)

    @app.exception_handler(_Internal)
    async def internal(request: Request, error: _Internal) -> JSONResponse:
        return JSONResponse(
            {"error": f"{error} (a bug, not an outage: logged with its stack trace by the API)"},
            status_code=500,
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        headers = dict(error.headers or {})
        if "Allow" in headers:
            headers["Allow"] = allow_header(headers["Allow"])
        return JSONResponse(
            {"error": str(error.detail)}, status_code=error.status_code, headers=headers
        )

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> JSONResponse:
        log.exception(f"unexpected error on {request.method} {request.url.path}")
        return JSONResponse({"error": "Internal error (logged by the API)"}, status_code=500)


class MetricsMiddleware:
    """Counts and times every request by route template (not the raw path: no user ids)."""

    def __init__(self, app, service: Service):
        self.app, self.metrics = app, service.metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), 500

        async def send_status(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            labels = (getattr(route, "path", "unmatched"), scope["method"], str(status))
            self.metrics.requests.labels(*labels).inc()
            self.metrics.latency.labels(*labels).observe(time.perf_counter() - started)
            self.metrics.sync_gc()  # multiprocess mode only: this worker's python_gc_* counters
