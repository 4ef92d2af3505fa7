"""The HTTP API (OpenAPI at /docs): one router per resource over the library; HTTP errors only here.

Domain packages add routers by exposing ``router`` in ``shelfwise.api.routers.<name>``; the ones listed in
``ROUTERS`` that exist are mounted."""

from __future__ import annotations

import importlib
import logging
import re
import time
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..app import Shelfwise
from ..errors import (
    ConfigError,
    ConflictError,
    IndexStateError,
    InputError,
    LLMError,
    MigrationError,
    NotFoundError,
    NotTrainedError,
    ShelfwiseError,
)
from ..observability import HTTP_LATENCY, trace
from .text import printable

__all__ = ["ROUTERS", "STATUS_BY_ERROR", "create_app"]

log = logging.getLogger("shelfwise.api")

ROUTERS = ("system", "products", "events", "enrich", "kb", "search", "graph")

# Most specific first: the first matching class decides the status code.
STATUS_BY_ERROR: tuple[tuple[type[ShelfwiseError], int], ...] = (
    (NotFoundError, 404),
    (ConflictError, 409),  # an InputError: listed before it
    (InputError, 422),
    (MigrationError, 503),
    (IndexStateError, 503),
    (NotTrainedError, 409),
    (LLMError, 502),
    (ConfigError, 500),
    (ShelfwiseError, 500),
)


# Methods the API serves; anything else is one "other" label, so made-up methods cannot grow the series.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# A client's X-Trace-Id is kept when it fits the stored column (64) and is plain ASCII; otherwise it is
# ignored and a fresh id is generated (and returned in the response header): a trace id is a hint, never a
# reason to refuse a request.
_TRACE_ID = re.compile(r"[A-Za-z0-9._:/+=-]{1,64}")
_HTTP_ERRORS = {
    401: ("Unauthorized", "send a valid API key in the X-API-Key header"),
    403: ("Forbidden", "use a key whose role allows this call (reader < writer < expert < admin)"),
    404: ("NotFound", "check the path against the API description at /docs"),
    405: ("MethodNotAllowed", "check the method against the API description at /docs"),
}


def _client_trace_id(value: str | None) -> str | None:
    return value if value is not None and _TRACE_ID.fullmatch(value) else None


def _error(error: str, detail: object, fix: str | None, status: int, headers: dict[str, str] | None = None
           ) -> JSONResponse:
    return JSONResponse({"error": error, "detail": printable(detail), "fix": fix}, status_code=status,
                        headers=headers)


def create_app(sw: Shelfwise | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI):  # type: ignore[no-untyped-def]
        owned = sw is None
        app.state.sw = sw or Shelfwise.open()
        yield
        if owned:
            app.state.sw.close()

    app = FastAPI(title="shelfwise", version="0.1.0", lifespan=lifespan,
                  description="Self-learning product intelligence: enrich, understand, search.")

    @app.middleware("http")
    async def with_trace(request: Request, call_next):  # type: ignore[no-untyped-def]
        started = time.perf_counter()
        method = request.method if request.method in KNOWN_METHODS else "other"
        status = 500  # what an exception below becomes (ServerErrorMiddleware answers with on_crash)
        try:
            with trace(_client_trace_id(request.headers.get("x-trace-id"))) as tid:
                request.state.trace_id = tid
                response = await call_next(request)
            status = response.status_code
            response.headers["x-trace-id"] = tid
            return response
        finally:
            # The route template (/products/{product_id}), not the raw path, keeps the label set small.
            route = getattr(request.scope.get("route"), "path", "unmatched")
            HTTP_LATENCY.labels(method, route, str(status)).observe(time.perf_counter() - started)

    @app.exception_handler(ShelfwiseError)
    async def on_error(_request: Request, exc: ShelfwiseError) -> JSONResponse:
        code = next(c for cls, c in STATUS_BY_ERROR if isinstance(exc, cls))
        if code >= 500:
            log.error("%s: %s", type(exc).__name__, exc)
        return _error(type(exc).__name__, str(exc), exc.fix, code)

    @app.exception_handler(RequestValidationError)
    async def on_invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return _error("ValidationError", jsonable_encoder(exc.errors()),
                      "correct the fields named in detail (loc, msg) and send the request again", 422)

    @app.exception_handler(StarletteHTTPException)
    async def on_http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        error, fix = _HTTP_ERRORS.get(exc.status_code, ("HTTPError", None))
        return _error(error, exc.detail, fix, exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def on_crash(request: Request, exc: Exception) -> JSONResponse:
        tid = getattr(request.state, "trace_id", None)
        log.error("unhandled %s on %s %s [trace %s]", type(exc).__name__, request.method,
                  getattr(request.scope.get("route"), "path", "unmatched"), tid, exc_info=exc)
        return _error("InternalError", "internal error",
                      f"retry later; if it persists, report it with trace id {tid} (the server log has the details)",
                      500, headers={"x-trace-id": tid} if tid else None)

    for name in ROUTERS:
        try:
            module = importlib.import_module(f"shelfwise.api.routers.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"shelfwise.api.routers.{name}":
                raise
            continue
        app.include_router(module.router)
    return app
