"""Validating and recording shopper feedback on search results.

Feedback must name a product that exists and a logged search decision that showed it; anything else is
rejected with an ``InputError`` (and a warning in the log), and nothing is written."""

from __future__ import annotations

import hashlib
import logging
from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..errors import InputError
from ..store.events import AddToCart, Click, EventLog, Purchase, SearchImpression, parse_event
from ..store.models import EventRow, Product
from .memory import record_interaction

__all__ = ["FEEDBACK_KINDS", "MAX_ID_CHARS", "MAX_QUANTITY", "RESERVED_KEY_PREFIXES", "FeedbackKind",
           "feedback_key", "find_impression", "impression_key", "record_feedback"]

log = logging.getLogger("shelfwise.search")
FeedbackKind = Literal["click", "add_to_cart", "purchase"]
_EVENTS = {"click": Click, "add_to_cart": AddToCart, "purchase": Purchase}
FEEDBACK_KINDS = tuple(_EVENTS)
# Idempotency keys only search writes: an event under one of them is trusted as a logged decision or as
# checked feedback, so nothing else (e.g. the generic POST /events) may use them.
RESERVED_KEY_PREFIXES = ("search_impression:", "search_feedback:")
MAX_QUANTITY = 10_000  # units in one purchase; more is a typo or an attack on the memory index
MAX_ID_CHARS = 200


def impression_key(decision_id: str) -> str:
    return f"search_impression:{decision_id}"


def feedback_key(kind: str, product_id: str, decision_id: str) -> str:
    """One event per (decision, product, kind): a replayed request must not add weight again. Hashed: the
    ids together could exceed the key column's 200 characters."""
    digest = hashlib.blake2b(f"{decision_id}\n{product_id}\n{kind}".encode(), digest_size=20).hexdigest()
    return f"search_feedback:{digest}"


def find_impression(session: Session, decision_id: str) -> SearchImpression | None:
    row = session.scalar(select(EventRow).where(EventRow.idempotency_key == impression_key(decision_id)))
    if row is None:
        return None
    event = parse_event({**row.payload, "type": row.type, "product_id": row.product_id})
    return event if isinstance(event, SearchImpression) else None


def _reject(message: str, fix: str) -> InputError:
    log.warning("feedback rejected: %s", message)
    return InputError(message, fix=fix)


def _check_id(value: object, what: str) -> None:
    if not isinstance(value, str) or not value.strip():
        raise _reject(f"feedback without a {what}", f"pass the {what} the search returned")
    try:
        value.encode("utf-8")  # a lone surrogate cannot be stored (or be any real id)
    except UnicodeEncodeError:
        raise _reject(f"the {what} {value[:40]!r} is not valid text", f"pass the {what} the search returned") from None
    if len(value) > MAX_ID_CHARS or "\x00" in value:
        raise _reject(f"the {what} {value[:40]!r}... is not an id", f"pass the {what} the search returned")


def record_feedback(session: Session, kind: str, product_id: str, decision_id: str, *, position: int | None = None,
                    quantity: int = 1, half_life_days: float = 30.0) -> int:
    """Check, log the event and fold it into the memory index; returns the event id. Idempotent: repeating
    the same kind of feedback on a product of a decision returns the first event's id and adds nothing."""
    kind = kind.replace("-", "_")  # the CLI's and the docs' spelling, add-to-cart
    if kind not in _EVENTS:
        raise _reject(f"unknown feedback kind {kind!r}", f"use one of {', '.join(_EVENTS)}")
    _check_id(product_id, "product id")
    _check_id(decision_id, "decision id")
    if isinstance(quantity, bool) or not isinstance(quantity, int) or not 1 <= quantity <= MAX_QUANTITY:
        raise _reject(f"purchase quantity {quantity!r} is out of range", f"use 1 to {MAX_QUANTITY} units")
    product = session.get(Product, product_id)
    if product is None or product.deleted:
        raise _reject(f"feedback for unknown product {product_id!r}", "use a product id from the search results")
    impression = find_impression(session, decision_id)
    if impression is None:
        raise _reject(f"feedback for search decision {decision_id!r}, which never happened",
                      "pass the decision_id returned with the search results")
    if product_id not in impression.product_ids:
        raise _reject(f"product {product_id!r} was not shown by decision {decision_id!r}",
                      "send feedback only for products on that result page")
    shown_at = impression.product_ids.index(product_id)
    if position is not None and position != shown_at:
        raise _reject(f"product {product_id!r} was shown at position {shown_at}, not {position}",
                      "send the position the product had on the page (0-based), or omit it")
    key = feedback_key(kind, product_id, decision_id)
    existing = session.scalar(select(EventRow.id).where(EventRow.idempotency_key == key))
    if existing is not None:
        return existing
    extra = {"quantity": quantity} if kind == "purchase" else {}
    event = _EVENTS[kind](product_id=product_id, query=impression.query, decision_id=decision_id,
                          position=shown_at, **extra)
    event_id = EventLog(session).append(event, idempotency_key=key)
    record_interaction(session, impression.query, product_id, kind, half_life_days=half_life_days)
    return event_id


def log_impression(session: Session, event: SearchImpression) -> int:
    return EventLog(session).append(event, idempotency_key=impression_key(event.decision_id))
