"""Trace ids, structured logs and Prometheus metrics, shared by every layer."""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import sys
import uuid
from collections.abc import Iterator

from prometheus_client import Counter, Histogram

__all__ = [
    "EVENTS_APPENDED",
    "HTTP_LATENCY",
    "LLM_CALLS",
    "LLM_LATENCY",
    "LLM_TOKENS",
    "configure_logging",
    "current_trace_id",
    "trace",
]

_TRACE_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("shelfwise_trace_id", default=None)

LLM_CALLS = Counter("shelfwise_llm_calls_total", "model calls", ["role", "model", "outcome"])
LLM_TOKENS = Counter("shelfwise_llm_tokens_total", "model tokens", ["role", "model", "direction"])
LLM_LATENCY = Histogram(
    "shelfwise_llm_latency_seconds", "model call latency", ["role", "model"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64, 128),
)
EVENTS_APPENDED = Counter("shelfwise_events_total", "events appended to the log", ["type"])
HTTP_LATENCY = Histogram(
    "shelfwise_http_request_seconds", "HTTP API request latency, by route template", ["method", "route", "status"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10, 60),
)


def current_trace_id() -> str | None:
    return _TRACE_ID.get()


@contextlib.contextmanager
def trace(trace_id: str | None = None) -> Iterator[str]:
    """Run a block under a trace id (a new one unless given); nested blocks keep the outer id."""
    existing = _TRACE_ID.get()
    tid = trace_id or existing or uuid.uuid4().hex[:16]
    token = _TRACE_ID.set(tid)
    try:
        yield tid
    finally:
        _TRACE_ID.reset(token)


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            "trace_id": current_trace_id(),
        }
        for key, value in record.__dict__.items():
            if key.startswith("sw_"):
                data[key[3:]] = value
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str)


class _TraceFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.trace_id = current_trace_id() or "-"
        return True


def configure_logging(level: str = "WARNING", json_logs: bool = False) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_TraceFilter())
    if json_logs:
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s [%(trace_id)s] %(message)s"))
    root = logging.getLogger("shelfwise")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
