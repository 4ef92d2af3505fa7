"""The event log over HTTP: append typed events (feedback, behaviour) and read them in order.

Only events that come from outside — seller appeals and listing updates, customer returns and reviews,
clicks, add-to-carts and purchases outside search — are appended here. Events the system produces itself
(listing ingested, extraction, disagreement, supervisor ruling, learning change, search impression) are
refused with the route that makes them: the learners trust those as the system's own record. Search
decisions and feedback on them go through ``/search`` (which makes and checks them) only."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from ...errors import InputError
from ...store.events import MAX_IDEMPOTENCY_KEY, Event, EventLog, parse_event
from ..deps import AppDep, Reader, Writer
from ..text import MAX_DB_INT, Name, printable

router = APIRouter(prefix="/events", tags=["events"])
MAX_LIMIT = 10_000  # events a page; 0 or a negative limit would mean "no limit" further down
# = shelfwise.search.feedback.RESERVED_KEY_PREFIXES; not imported: that pulls in the search package
RESERVED_KEY_PREFIXES = ("search_impression:", "search_feedback:")
_SEARCH_FEEDBACK = ("click", "add_to_cart", "purchase")
# Event types the system writes itself, and where a client does what would produce them.
INTERNAL_EVENT_TYPES: dict[str, str] = {
    "listing_ingested": "send listings to POST /products; ingesting them logs this event",
    "extraction": "values come from the enrichment loop; to correct one, resolve it with POST "
                  "/review/{item_id}/resolve or appeal it with POST /feedback/appeal",
    "disagreement": "disagreements are logged by the enrichment loop; to dispute a value use POST /feedback/appeal",
    "supervisor_ruling": "rulings are the supervisor's; a person settles a case with POST /review/{item_id}/resolve",
    "learning_change": "change learnings through /kb/learnings (add, approve, retire, rollback); each change "
                       "logs this event",
    "search_impression": "run the search with GET /search; it logs the decision and returns its decision_id",
}
IdempotencyKey = Annotated[Name | None, Query(max_length=MAX_IDEMPOTENCY_KEY,
                                              description="repeat it to retry safely: the same event returns "
                                                          "the first id, a different one is refused (409)")]


class Appended(BaseModel):
    id: int


def _refuse_internal(event: Event, idempotency_key: str | None) -> None:
    if event.type in INTERNAL_EVENT_TYPES:
        what = "search impressions are" if event.type == "search_impression" else f"{event.type} events are"
        raise InputError(f"{what} written by shelfwise itself, not through /events",
                         fix=INTERNAL_EVENT_TYPES[event.type])
    if event.type in _SEARCH_FEEDBACK and getattr(event, "decision_id", None) is not None:
        raise InputError(f"a {event.type} on a search decision must be checked against that decision",
                         fix="send it to POST /search/feedback (or drop decision_id for a purchase outside search)")
    if idempotency_key is not None and idempotency_key.startswith(RESERVED_KEY_PREFIXES):
        raise InputError(f"idempotency keys starting with {idempotency_key.split(':')[0]}: are reserved for search",
                         fix="use another key, e.g. your order or session id")


@router.post("", response_model=Appended)
def append(event: dict[str, Any], sw: AppDep, _: Writer, idempotency_key: IdempotencyKey = None) -> Appended:
    """Append one event from outside: seller_appeal, listing_updated, customer_return, review, and click,
    add_to_cart or purchase outside search. Repeating an ``idempotency_key`` with the same event returns
    the first event's id; with a different event it is refused (409). Events shelfwise writes itself are
    refused (422) with the route to use; so is feedback on a search decision (``/search/feedback``)."""
    typed = parse_event(event)
    _refuse_internal(typed, idempotency_key)
    with sw.db.session() as s:
        return Appended(id=EventLog(s).append(typed, idempotency_key=idempotency_key))


@router.get("")
def read(sw: AppDep, _: Reader, type: Name | None = None,
         since_id: Annotated[int, Query(ge=0, le=MAX_DB_INT, description="exclusive: the last id you read")] = 0,
         product_id: Name | None = None,
         limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100) -> list[dict[str, Any]]:
    with sw.db.session() as s:
        # printable: an event stored before text was checked on the way in must not make the log unreadable
        return [printable({"id": e.id, "ts": e.ts.isoformat(), "trace_id": e.trace_id,
                           **e.event.model_dump(mode="json")})  # type: ignore[dict-item]
                for e in EventLog(s).read(type, since_id=since_id, product_id=product_id, limit=limit)]
