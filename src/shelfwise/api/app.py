"""The HTTP API (OpenAPI at /docs): one router per resource over the library; HTTP errors only here.

Domain packages add routers by exposing ``router`` in ``shelfwise.api.routers.<name>``; the ones listed in
``ROUTERS`` that exist are mounted."""

from __future__ import annotations

import importlib
import time
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from ..app import Shelfwise
from ..errors import (
    ConfigError,
    IndexStateError,
    InputError,
    LLMError,
    MigrationError,
    NotFoundError,
    NotTrainedError,
    ShelfwiseError,
)
from ..observability import HTTP_LATENCY, trace

__all__ = ["ROUTERS", "STATUS_BY_ERROR", "create_app"]

ROUTERS = ("system", "products", "events", "enrich", "kb", "search", "graph")

# Most specific first: the first matching class decides the status code.
STATUS_BY_ERROR: tuple[tuple[type[ShelfwiseError], int], ...] = (
    (NotFoundError, 404),
    (InputError, 422),
    (MigrationError, 503),
    (IndexStateError, 503),
    (NotTrainedError, 409),
    (LLMError, 502),
    (ConfigError, 500),
    (ShelfwiseError, 500),
)


def _printable(value: object) -> object:
    """``value`` with lone surrogates spelled out: a 422 echoes the bad input, and JSON as UTF-8 cannot carry
    them (the response itself would fail with a 500)."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {_printable(k): _printable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_printable(v) for v in value]
    return value


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
        with trace(request.headers.get("x-trace-id")) as tid:
            response = await call_next(request)
        response.headers["x-trace-id"] = tid
        # The route template (/products/{product_id}), not the raw path, keeps the label set small.
        route = getattr(request.scope.get("route"), "path", "unmatched")
        HTTP_LATENCY.labels(request.method, route, str(response.status_code)).observe(time.perf_counter() - started)
        return response

    @app.exception_handler(ShelfwiseError)
    async def on_error(_request: Request, exc: ShelfwiseError) -> JSONResponse:
        code = next(c for cls, c in STATUS_BY_ERROR if isinstance(exc, cls))
        return JSONResponse({"error": type(exc).__name__, "detail": str(exc), "fix": exc.fix}, status_code=code)

    @app.exception_handler(RequestValidationError)
    async def on_invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": _printable(jsonable_encoder(exc.errors()))}, status_code=422)

    for name in ROUTERS:
        try:
            module = importlib.import_module(f"shelfwise.api.routers.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"shelfwise.api.routers.{name}":
                raise
            continue
        app.include_router(module.router)
    return app
