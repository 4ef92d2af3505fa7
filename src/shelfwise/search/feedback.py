"""Validating and recording shopper feedback on search results.

Feedback must name a product that exists and a logged search decision that showed it; anything else is
rejected with an ``InputError`` (and a warning in the log), and nothing is written."""

from __future__ import annotations

import logging
from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..errors import InputError
from ..store.events import AddToCart, Click, EventLog, Purchase, SearchImpression, parse_event
from ..store.models import EventRow, Product
from .memory import record_interaction

__all__ = ["FeedbackKind", "find_impression", "impression_key", "record_feedback"]

log = logging.getLogger("shelfwise.search")
FeedbackKind = Literal["click", "add_to_cart", "purchase"]
_EVENTS = {"click": Click, "add_to_cart": AddToCart, "purchase": Purchase}


def impression_key(decision_id: str) -> str:
    return f"search_impression:{decision_id}"


def find_impression(session: Session, decision_id: str) -> SearchImpression | None:
    row = session.scalar(select(EventRow).where(EventRow.idempotency_key == impression_key(decision_id)))
    if row is None:
        return None
    event = parse_event({**row.payload, "type": row.type, "product_id": row.product_id})
    return event if isinstance(event, SearchImpression) else None


def _reject(message: str, fix: str) -> InputError:
    log.warning("feedback rejected: %s", message)
    return InputError(message, fix=fix)


def record_feedback(session: Session, kind: str, product_id: str, decision_id: str, *, position: int | None = None,
                    quantity: int = 1, half_life_days: float = 30.0) -> int:
    """Check, log the event and fold it into the memory index; returns the event id."""
    if kind not in _EVENTS:
        raise _reject(f"unknown feedback kind {kind!r}", f"use one of {', '.join(_EVENTS)}")
    if not isinstance(product_id, str) or not product_id.strip():
        raise _reject("feedback without a product id", "pass the id of the product the shopper acted on")
    product = session.get(Product, product_id)
    if product is None or product.deleted:
        raise _reject(f"feedback for unknown product {product_id!r}", "use a product id from the search results")
    impression = find_impression(session, decision_id) if isinstance(decision_id, str) else None
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
    extra = {"quantity": quantity} if kind == "purchase" else {}
    event = _EVENTS[kind](product_id=product_id, query=impression.query, decision_id=decision_id,
                          position=shown_at, **extra)
    event_id = EventLog(session).append(event)
    record_interaction(session, impression.query, product_id, kind, half_life_days=half_life_days)
    return event_id


def log_impression(session: Session, event: SearchImpression) -> int:
    return EventLog(session).append(event, idempotency_key=impression_key(event.decision_id))
