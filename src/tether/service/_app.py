"""`tether serve`: the HTTP service (FastAPI). Every route but health, readiness and the page needs an API key;
the key's tenant and role decide what the request may see and do, and the tenant is applied inside the store.

Routes are grouped by job: this file builds the app (errors, limits, metrics, logs, start and stop),
``_routes`` has asking, conversations, memory, feedback and traces, ``_documents`` the corpus and ingest jobs,
``_openai`` the OpenAI-compatible surface.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from tether._api import Tether
from tether.config import resolve_path
from tether.errors import DataError, IndexMissingError, RequestError, TetherError
from tether.service._auth import Principal, RateLimiter, ServiceError, authenticate, bearer
from tether.service._data import ServiceData
from tether.service._jobs import JobRunner
from tether.service._keys import KeyStore
from tether.service._metrics import Metrics
from tether.service._schemas import ErrorResponse, Health

log = logging.getLogger("tether.service")
access = logging.getLogger("tether.service.access")

ERRORS: dict[int | str, dict[str, Any]] = {
    s: {"model": ErrorResponse, "description": d}
    for s, d in (
        (400, "bad request (the message names what and where)"),
        (401, "no API key, or one that is not valid (forged, malformed or revoked)"),
        (403, "the key's role may not do this"),
        (404, "no such record for this tenant (another tenant's ids read the same as missing ones)"),
        (413, "the body or an uploaded file is too large"),
        (422, "a field is missing, misspelt or of the wrong type (fields names each)"),
        (429, "over the key's rate limit (Retry-After says when to come back)"),
    )
}


@dataclass
class Service:
    """What the routes share: the library, the key store, the service's records, limits and metrics."""

    tether: Tether
    keys: KeyStore
    data: ServiceData
    limiter: RateLimiter
    metrics: Metrics
    jobs: JobRunner
    facts: Any = None  # tether.memory.FactStore when service.memory is on
    # asks and searches running the models at once: more than the cores only queue inside ONNX Runtime, and every
    # concurrent run grows its memory arena for good (50 users: 3.1 GB RSS unbounded; docs/service.md)
    model_slots: threading.BoundedSemaphore = field(default_factory=lambda: threading.BoundedSemaphore(2))
    state: str = "starting"
    started: float = field(default_factory=time.monotonic)
    resumed_jobs: int = 0


def service_of(request: Request) -> Service:
    svc: Service = request.app.state.service
    return svc


def principal(
    request: Request,
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
    x_api_key: Annotated[str | None, Header(include_in_schema=False)] = None,
    x_tether_user: Annotated[
        str | None, Header(description="the end user, when one key serves many (memory and conversations)")
    ] = None,
) -> Principal:
    """The authenticated caller of a request, after its rate limit."""
    svc = service_of(request)
    who = authenticate(svc.keys, bearer(authorization, x_api_key), x_tether_user)
    svc.limiter.take(who.key_id)
    request.state.tenant = who.tenant
    return who


Caller = Annotated[Principal, Depends(principal)]
Svc = Annotated[Service, Depends(service_of)]


def _error(status: int, code: str, message: str, fields: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "message": message, "type": code}
    if fields:
        body["fields"] = fields
    return {"error": body}


def _install_errors(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def _service_error(request: Request, e: ServiceError) -> JSONResponse:
        return JSONResponse(_error(e.status_code, e.code, str(e.detail)), e.status_code, headers=e.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, e: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed", 413: "too_large"}.get(e.status_code, "http_error")
        message = "the request body is too large" if e.status_code == 413 else str(e.detail)
        return JSONResponse(_error(e.status_code, code, message), e.status_code, headers=e.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, e: RequestValidationError) -> JSONResponse:
        fields = [
            {"loc": [str(p) for p in err.get("loc", ())], "msg": str(err.get("msg", ""))} for err in e.errors()[:20]
        ]
        first = fields[0] if fields else {"loc": [], "msg": "invalid request"}
        where = ".".join(first["loc"][1:] if len(first["loc"]) > 1 else first["loc"]) or "body"
        return JSONResponse(_error(422, "invalid_request", f"{where}: {first['msg']}", fields), 422)

    @app.exception_handler(RequestError)
    async def _bad_request(request: Request, e: RequestError) -> JSONResponse:
        return JSONResponse(_error(400, "bad_request", str(e)), 400)

    @app.exception_handler(DataError)
    async def _bad_data(request: Request, e: DataError) -> JSONResponse:
        return JSONResponse(_error(400, "bad_data", str(e)), 400)

    @app.exception_handler(IndexMissingError)
    async def _no_index(request: Request, e: IndexMissingError) -> JSONResponse:
        return JSONResponse(_error(409, "index_empty", "no documents yet: upload some (POST /v1/documents)"), 409)

    @app.exception_handler(TetherError)
    async def _tether_error(request: Request, e: TetherError) -> JSONResponse:
        log.error("request failed: %s", e)
        return JSONResponse(_error(503, "unavailable", str(e)), 503)


def _install_telemetry(app: FastAPI, metrics: Metrics, json_limit: int, upload_limit: int) -> None:
    @app.middleware("http")
    async def _observe(request: Request, call_next: Any) -> Response:
        declared = request.headers.get("content-length", "")
        limit = upload_limit if request.url.path.startswith("/v1/documents") else json_limit
        if declared.isdigit() and int(declared) > limit:  # refused before a byte of the body is read
            metrics.requests.labels("unmatched", request.method, "413").inc()
            kib = limit // 1024
            return JSONResponse(_error(413, "too_large", f"the request body is larger than {kib} KiB"), 413)
        t0 = time.perf_counter()
        metrics.in_flight.inc()
        status = 500
        try:
            response: Response = await call_next(request)
            status = response.status_code
            return response
        finally:
            metrics.in_flight.dec()
            route = getattr(request.scope.get("route"), "path", "unmatched")
            dt = time.perf_counter() - t0
            metrics.latency.labels(route).observe(dt)
            metrics.requests.labels(route, request.method, str(status)).inc()
            access.info(
                json.dumps(
                    {
                        "method": request.method,
                        "route": route,
                        "status": status,
                        "ms": round(dt * 1000, 1),
                        "tenant": getattr(request.state, "tenant", None),
                    }
                )
            )


def create_app(tether: Tether, *, warm: bool = True) -> FastAPI:
    """The service over ``tether`` (its settings' ``service:`` section). ``warm``: load the models at start, so
    the first request is as fast as the rest (readiness says when)."""
    from tether.service._documents import MAX_FILES
    from tether.service._documents import router as documents_router
    from tether.service._openai import router as openai_router
    from tether.service._page import router as page_router
    from tether.service._routes import router as api_router

    s = tether.settings
    sv = s.service
    metrics = Metrics()
    data = ServiceData(resolve_path(sv.data_path, s.root))
    facts = None
    if sv.memory:
        from tether.memory import FactStore

        facts = FactStore.open(resolve_path(sv.data_path, s.root).with_suffix(".memory.db"))
    svc = Service(
        tether=tether,
        keys=KeyStore(resolve_path(sv.keys_path, s.root)),
        data=data,
        limiter=RateLimiter(sv.requests_per_minute),
        metrics=metrics,
        jobs=JobRunner(tether, data, metrics),
        facts=facts,
        model_slots=threading.BoundedSemaphore(sv.model_concurrency or os.cpu_count() or 2),
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if warm:
            await asyncio.to_thread(_warm_up, tether)
        svc.resumed_jobs = svc.jobs.start()
        svc.state = "ok"
        log.info("tether service ready (%d unfinished ingest jobs resumed)", svc.resumed_jobs)
        try:
            yield
        finally:
            svc.state = "stopping"
            finished = await asyncio.to_thread(svc.jobs.stop, 10.0)
            if not finished:
                log.warning("an ingest job is still running; it runs again at the next start")
            svc.keys.close()
            data.close()
            if facts is not None:
                facts.close()
            tether.close()

    app = FastAPI(
        title="Tether",
        version="0.1.0",
        summary="Grounded answers over your own documents, with cited spans and an honest 'not in the documents'.",
        lifespan=lifespan,
        responses=ERRORS,
    )
    app.state.service = svc
    _install_errors(app)
    json_limit = sv.max_body_kb * 1024
    # an upload: every file at its limit, and the multipart framing (each file is checked on its own as well)
    upload_limit = MAX_FILES * (sv.max_upload_mb * 1024 * 1024 + 4096)
    _install_telemetry(app, metrics, json_limit, upload_limit)

    @app.get("/healthz", tags=["operations"])
    def healthz() -> Health:
        """Liveness: the process answers."""
        return Health(status="ok")

    @app.get("/readyz", tags=["operations"], responses={503: {"model": Health}})
    def readyz() -> Response:
        """Readiness: models loaded and the service is not stopping (503 until then, and while it stops)."""
        try:
            docs = svc.tether.store(create=True).stats().documents  # an empty index is ready: uploads fill it
        except TetherError as e:
            return JSONResponse(Health(status="starting", detail={"error": str(e)}).model_dump(), 503)
        detail = {"documents": docs, "ingest_job": svc.jobs.current, "resumed_jobs": svc.resumed_jobs}
        status = 200 if svc.state == "ok" else 503
        return JSONResponse({"status": svc.state, "detail": detail}, status)

    @app.get("/metrics", tags=["operations"], response_class=PlainTextResponse)
    def prometheus(who: Caller) -> Response:
        """Prometheus metrics (an admin key: labels name tenants)."""
        if who.role != "admin":
            raise ServiceError(403, "forbidden", "metrics need a key with role admin")
        return Response(metrics.text(), media_type="text/plain; version=0.0.4")

    app.include_router(api_router, max_body_size=json_limit)  # bodies without a length are counted as they come
    app.include_router(openai_router, max_body_size=json_limit)
    app.include_router(documents_router, max_body_size=upload_limit)
    app.include_router(page_router)
    return app


def _warm_up(tether: Tether) -> None:
    try:
        tether.pipeline("ask").warm_up(tether)
        if tether.store().chunk_count():
            tether.answerer()
    except TetherError as e:  # an empty index is fine: uploads fill it
        log.info("warm-up: %s", e)
