"""The event log over HTTP: append typed events (feedback, behaviour) and read them in order."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from ...store.events import EventLog, parse_event
from ..deps import AppDep, Reader, Writer

router = APIRouter(prefix="/events", tags=["events"])


class Appended(BaseModel):
    id: int


@router.post("", response_model=Appended)
def append(event: dict[str, Any], sw: AppDep, _: Writer, idempotency_key: str | None = None) -> Appended:
    """Append one typed event; repeating an ``idempotency_key`` returns the first event's id."""
    typed = parse_event(event)
    with sw.db.session() as s:
        return Appended(id=EventLog(s).append(typed, idempotency_key=idempotency_key))


@router.get("")
def read(sw: AppDep, _: Reader, type: str | None = None, since_id: int = 0, product_id: str | None = None,
         limit: int = 100) -> list[dict[str, Any]]:
    with sw.db.session() as s:
        return [{"id": e.id, "ts": e.ts.isoformat(), "trace_id": e.trace_id, **e.event.model_dump(mode="json")}
                for e in EventLog(s).read(type, since_id=since_id, product_id=product_id,
                                          limit=min(limit, 10_000))]
