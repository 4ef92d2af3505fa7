"""The event log over HTTP: append typed events (feedback, behaviour) and read them in order.

Search decisions and feedback on them are not appended here: learning trusts a search impression as a
decision the pipeline made, and a click/cart/purchase on a decision as feedback checked against it, so
those go through ``/search`` (which makes and checks them) only."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from ...errors import InputError
from ...store.events import Event, EventLog, parse_event
from ..deps import AppDep, Reader, Writer

router = APIRouter(prefix="/events", tags=["events"])
MAX_LIMIT = 10_000  # events a page; 0 or a negative limit would mean "no limit" further down
# = shelfwise.search.feedback.RESERVED_KEY_PREFIXES; not imported: that pulls in the search package
RESERVED_KEY_PREFIXES = ("search_impression:", "search_feedback:")
_SEARCH_FEEDBACK = ("click", "add_to_cart", "purchase")


class Appended(BaseModel):
    id: int


def _refuse_search_owned(event: Event, idempotency_key: str | None) -> None:
    if event.type == "search_impression":
        raise InputError("search impressions are logged by the search itself, not through /events",
                         fix="run the search with GET /search; it logs the decision and returns its decision_id")
    if event.type in _SEARCH_FEEDBACK and getattr(event, "decision_id", None) is not None:
        raise InputError(f"a {event.type} on a search decision must be checked against that decision",
                         fix="send it to POST /search/feedback (or drop decision_id for a purchase outside search)")
    if idempotency_key is not None and idempotency_key.startswith(RESERVED_KEY_PREFIXES):
        raise InputError(f"idempotency keys starting with {idempotency_key.split(':')[0]}: are reserved for search",
                         fix="use another key, e.g. your order or session id")


@router.post("", response_model=Appended)
def append(event: dict[str, Any], sw: AppDep, _: Writer, idempotency_key: str | None = None) -> Appended:
    """Append one typed event; repeating an ``idempotency_key`` returns the first event's id. Search
    impressions and feedback on a search decision are refused (422): use ``/search`` and
    ``/search/feedback``."""
    typed = parse_event(event)
    _refuse_search_owned(typed, idempotency_key)
    with sw.db.session() as s:
        return Appended(id=EventLog(s).append(typed, idempotency_key=idempotency_key))


@router.get("")
def read(sw: AppDep, _: Reader, type: str | None = None, since_id: int = 0, product_id: str | None = None,
         limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100) -> list[dict[str, Any]]:
    with sw.db.session() as s:
        return [{"id": e.id, "ts": e.ts.isoformat(), "trace_id": e.trace_id, **e.event.model_dump(mode="json")}
                for e in EventLog(s).read(type, since_id=since_id, product_id=product_id, limit=limit)]
