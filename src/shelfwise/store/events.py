"""Typed events and the append-only event log: one log, three learners.

Each event type is a pydantic model with a ``type`` literal. Domains append events and read them back,
typed, by type and by position (``since_id``) — that is how enrich, graph and search talk to each other
without importing each other's internals. Unknown extra payload keys are kept, so newer writers do not
break older readers.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..errors import ConflictError, InputError
from .models import EventRow, utcnow

__all__ = [
    "EVENT_TYPES",
    "MAX_IDEMPOTENCY_KEY",
    "AddToCart",
    "AnyEvent",
    "Click",
    "CustomerReturn",
    "Disagreement",
    "Event",
    "EventLog",
    "Extraction",
    "LearningChange",
    "ListingIngested",
    "ListingUpdated",
    "Purchase",
    "Review",
    "SearchImpression",
    "SellerAppeal",
    "StoredEvent",
    "SupervisorRuling",
    "find_bad_text",
    "text_problem",
]

MAX_IDEMPOTENCY_KEY = 200  # = EventRow.idempotency_key's column width
MAX_TRACE_ID = 64  # = EventRow.trace_id's column width
_TEXT_FIX = "send valid UTF-8 text without NUL characters (\\u0000) or unpaired surrogates (\\ud800-\\udfff)"


def text_problem(value: str) -> str | None:
    """What makes ``value`` unstorable as text (a NUL, which PostgreSQL refuses, or an unpaired surrogate, which
    UTF-8 cannot carry), or None."""
    if "\x00" in value:
        return "a NUL character (\\u0000)"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"an unpaired surrogate ({value[exc.start]!r} at position {exc.start})"
    return None


def find_bad_text(value: Any, where: str = "") -> tuple[str, str] | None:
    """The first string (key or value, at any depth) in ``value`` that ``text_problem`` refuses: (where, what)."""
    if isinstance(value, str):
        problem = text_problem(value)
        return (where or "value", problem) if problem else None
    if isinstance(value, dict):
        for k, v in value.items():
            name = f"{where}.{k}" if where else str(k)
            found = find_bad_text(k, name) or find_bad_text(v, name)
            if found:
                return found
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            found = find_bad_text(v, f"{where}[{i}]")
            if found:
                return found
    return None


def _refuse_bad_text(value: Any, what: str) -> None:
    found = find_bad_text(value)
    if found:
        where, problem = found
        where = where.encode("utf-8", "backslashreplace").decode("utf-8")
        raise InputError(f"{what} field {where!r} contains {problem}", fix=_TEXT_FIX)


def _checked_payload(event: Event) -> dict[str, Any]:
    """The event's stored payload, once its type is known and all its text is storable (else ``InputError``)."""
    if event.type not in EVENT_TYPES:
        raise InputError(f"unknown event type {event.type!r}", fix=f"use one of {', '.join(EVENT_TYPES)}")
    payload = event.model_dump(mode="json", exclude={"type", "product_id"})
    _refuse_bad_text({"product_id": event.product_id, **payload}, f"{event.type} event")
    return payload


class Event(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    type: str
    product_id: str | None = None


class ListingIngested(Event):
    type: Literal["listing_ingested"] = "listing_ingested"
    source: str = ""
    content_hash: str = ""


class ListingUpdated(Event):
    """A seller edited a listing (a signal: the seller may disagree with what we stored)."""

    type: Literal["listing_updated"] = "listing_updated"
    changed_fields: list[str] = Field(default_factory=list)
    content_hash: str = ""
    version: int = 1


class Extraction(Event):
    type: Literal["extraction"] = "extraction"
    attribute: str
    value: str | None
    status: str
    model: str = ""
    prompt_version: str = ""
    learning_ids: list[int] = Field(default_factory=list)
    batch_id: str | None = None


class Disagreement(Event):
    type: Literal["disagreement"] = "disagreement"
    attribute: str
    category_path: str = ""
    values: list[str | None] = Field(default_factory=list)
    reasons: list[str] = Field(default_factory=list)
    batch_id: str | None = None


class SupervisorRuling(Event):
    type: Literal["supervisor_ruling"] = "supervisor_ruling"
    attribute: str
    value: str | None
    confidence: float = 0.0
    why_disagreed: str = ""
    learning_ids: list[int] = Field(default_factory=list)
    sent_to_review: bool = False


class LearningChange(Event):
    type: Literal["learning_change"] = "learning_change"
    learning_id: int
    action: str  # created | merged | replaced | edited | approved | retired | rolled_back | promoted
    reason: str = ""


class SellerAppeal(Event):
    """Untrusted text: ``message`` is data, never an instruction to any model."""

    type: Literal["seller_appeal"] = "seller_appeal"
    seller_id: str | None = None
    attribute: str | None = None
    claimed_value: str | None = None
    message: str = ""


class CustomerReturn(Event):
    type: Literal["customer_return"] = "customer_return"
    reason: str = ""
    query: str | None = None
    decision_id: str | None = None


class Review(Event):
    type: Literal["review"] = "review"
    rating: int = Field(0, ge=0, le=5)
    text: str = ""


class SearchImpression(Event):
    """What a shopper was shown, and by which logged decision (with its propensity, for off-policy eval)."""

    type: Literal["search_impression"] = "search_impression"
    query: str
    decision_id: str
    product_ids: list[str]
    propensity: float = Field(1.0, gt=0.0, le=1.0)
    action: dict[str, Any] = Field(default_factory=dict)
    context: dict[str, Any] = Field(default_factory=dict)
    user_segment: str | None = None


class _Interaction(Event):
    query: str | None = None
    decision_id: str | None = None
    position: int | None = Field(None, ge=0)


class Click(_Interaction):
    type: Literal["click"] = "click"


class AddToCart(_Interaction):
    type: Literal["add_to_cart"] = "add_to_cart"


class Purchase(_Interaction):
    type: Literal["purchase"] = "purchase"
    quantity: int = Field(1, ge=1)


AnyEvent = Annotated[
    ListingIngested | ListingUpdated | Extraction | Disagreement | SupervisorRuling | LearningChange | SellerAppeal | CustomerReturn | Review | SearchImpression | Click | AddToCart | Purchase,
    Field(discriminator="type"),
]
_ADAPTER: TypeAdapter[Any] = TypeAdapter(AnyEvent)
EVENT_TYPES: tuple[str, ...] = tuple(
    cls.model_fields["type"].default
    for cls in (
        ListingIngested, ListingUpdated, Extraction, Disagreement, SupervisorRuling, LearningChange,
        SellerAppeal, CustomerReturn, Review, SearchImpression, Click, AddToCart, Purchase,
    )
)


class StoredEvent(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: int
    ts: datetime
    trace_id: str | None
    event: Any  # one of AnyEvent


def parse_event(data: dict[str, Any]) -> Event:
    """An event from untrusted input (the API, a file): typed and checked, text included."""
    _refuse_bad_text(data, "event")
    try:
        return _ADAPTER.validate_python(data)
    except ValidationError as exc:
        raise InputError(
            f"invalid event {data.get('type')!r}: {exc.errors()[0]['msg']} at {exc.errors()[0]['loc']}",
            fix=f"send one of the event types {', '.join(EVENT_TYPES)} with its required fields",
        ) from exc


class EventLog:
    """Append and read typed events. Appends join the caller's transaction (commit is the caller's)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def append(self, event: Event, *, idempotency_key: str | None = None, trace_id: str | None = None) -> int:
        """Append one event and return its id. With an idempotency key, a repeat of the same event returns the
        first id; the key reused for a different event is a ``ConflictError``. Text that cannot be stored and
        read back (NUL, unpaired surrogates) is refused before anything is written."""
        from ..observability import EVENTS_APPENDED, current_trace_id

        payload = _checked_payload(event)
        if idempotency_key is not None:
            _check_key(idempotency_key)
            existing = self._by_key(idempotency_key)
            if existing is not None:
                return _same_event(existing, event, payload, idempotency_key)
        row = EventRow(
            type=event.type,
            product_id=event.product_id,
            payload=payload,
            idempotency_key=idempotency_key,
            trace_id=(trace_id or current_trace_id() or "")[:MAX_TRACE_ID] or None,
        )
        EVENTS_APPENDED.labels(event.type).inc()
        if idempotency_key is None:
            self.session.add(row)
            self.session.flush()
            return row.id
        try:
            with self.session.begin_nested():
                self.session.add(row)
        except IntegrityError:  # a concurrent writer won the race; the event is already logged
            existing = self._by_key(idempotency_key)
            if existing is None:
                raise
            return _same_event(existing, event, payload, idempotency_key)
        return row.id

    def _by_key(self, idempotency_key: str) -> Any:
        return self.session.execute(select(EventRow.id, EventRow.type, EventRow.product_id, EventRow.payload)
                                    .where(EventRow.idempotency_key == idempotency_key)).first()

    def append_many(self, events: Sequence[Event]) -> list[int]:
        """Append events in order with one multi-row insert per 400 and return their ids in the same order.
        No idempotency keys: for batch writers whose events are written once, in the transaction that
        marks their work done (the enrichment loop)."""
        from ..observability import EVENTS_APPENDED, current_trace_id

        table, trace, now, ids = EventRow.__table__, current_trace_id(), utcnow(), []
        events = list(events)
        # every event is checked before any is written: a batch goes in whole or not at all
        payloads = [_checked_payload(ev) for ev in events]
        for start in range(0, len(events), 400):  # well inside SQLite's bound-parameter limit
            part = events[start: start + 400]
            rows = [{"type": e.type, "product_id": e.product_id, "trace_id": trace, "ts": now, "payload": payload}
                    for e, payload in zip(part, payloads[start: start + 400], strict=True)]
            result = self.session.execute(insert(table).returning(table.c.id, sort_by_parameter_order=True), rows)
            ids += [r[0] for r in result]
            for e in part:
                EVENTS_APPENDED.labels(e.type).inc()
        return ids

    def read(
        self,
        types: Sequence[str] | str | None = None,
        *,
        since_id: int = 0,
        product_id: str | None = None,
        limit: int | None = None,
    ) -> Iterator[StoredEvent]:
        """Events in log order, typed. ``since_id`` is exclusive, so a reader can resume from its last id."""
        stmt = select(EventRow).where(EventRow.id > since_id).order_by(EventRow.id)
        if isinstance(types, str):
            types = [types]
        if types:
            stmt = stmt.where(EventRow.type.in_(list(types)))
        if product_id is not None:
            stmt = stmt.where(EventRow.product_id == product_id)
        if limit is not None:
            stmt = stmt.limit(limit)
        for row in self.session.scalars(stmt).yield_per(1000):
            data = {**row.payload, "type": row.type, "product_id": row.product_id}
            yield StoredEvent(id=row.id, ts=row.ts, trace_id=row.trace_id, event=_ADAPTER.validate_python(data))

    def count(self, type: str | None = None) -> int:
        from sqlalchemy import func

        stmt = select(func.count(EventRow.id))
        if type:
            stmt = stmt.where(EventRow.type == type)
        return int(self.session.scalar(stmt) or 0)


def _check_key(key: str) -> None:
    if not key or len(key) > MAX_IDEMPOTENCY_KEY:
        raise InputError(f"idempotency key of {len(key)} characters" if key else "empty idempotency key",
                         fix=f"use a key of 1-{MAX_IDEMPOTENCY_KEY} characters, e.g. your order or session id")
    _refuse_bad_text(key, "idempotency key")


def _same_event(existing: Any, event: Event, payload: dict[str, Any], key: str) -> int:
    """The stored event's id if it is the one being appended again, else a ``ConflictError``."""
    if (existing.type, existing.product_id, existing.payload) != (event.type, event.product_id, payload):
        raise ConflictError(f"idempotency key {key!r} was already used for a different event (id {existing.id}, "
                            f"{existing.type} on {existing.product_id!r})",
                            fix="use a new key for a new event; resend exactly the same event to repeat it safely")
    return int(existing.id)
