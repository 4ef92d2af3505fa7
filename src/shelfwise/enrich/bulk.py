"""Set-at-a-time writes for a group of enriched products: one statement per kind of row instead of one per
value. This is what keeps the loop's own overhead (model time excluded) far below the model's: a product
costs a handful of rows, and per-row ORM round trips cost more than the rest of the loop together.

``append_events`` is ``EventLog.append_many`` (no idempotency keys: the loop's events need none, a product
is written once, in the transaction that marks it done)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import insert, select, tuple_, update
from sqlalchemy.orm import Session

from ..store.events import Event, EventLog
from ..store.models import ExtractedValue, JobItem, utcnow

__all__ = ["append_events", "mark_done", "store_values"]

# Core tables, not ORM classes: ORM bulk inserts spend more per row than the database does.
_VALUES, _JOBS = ExtractedValue.__table__, JobItem.__table__
_CHUNK = 400  # rows per statement: well inside SQLite's bound-parameter limit


def _chunks(items: Sequence[Any], n: int = _CHUNK) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), n):
        yield items[i: i + n]


def append_events(session: Session, events: Sequence[Event]) -> list[int]:
    """Append events in order and return their ids (same order)."""
    return EventLog(session).append_many(events)


def store_values(session: Session, values: Sequence[Mapping[str, Any]]) -> None:
    """Supersede the current value of every (product, attribute) given and insert the new ones. Each mapping
    has the ``ExtractedValue`` columns (``event_id`` included)."""
    if not values:
        return
    pairs = list(dict.fromkeys((v["product_id"], v["attribute"]) for v in values))
    for part in _chunks(pairs, _CHUNK // 2):
        session.execute(update(ExtractedValue)
                        .where(tuple_(ExtractedValue.product_id, ExtractedValue.attribute).in_(part),
                               ExtractedValue.is_current.is_(True))
                        .values(is_current=False).execution_options(synchronize_session=False))
    last = {(v["product_id"], v["attribute"]): i for i, v in enumerate(values)}  # a repeat supersedes
    now = utcnow()
    rows = [{**v, "is_current": last[(v["product_id"], v["attribute"])] == i, "created_at": now}
            for i, v in enumerate(values)]
    for part in _chunks(rows):
        session.execute(insert(_VALUES), list(part))


def mark_done(session: Session, job: str, results: Mapping[str, dict[str, Any]]) -> None:
    """``JobTracker.mark(..., "done")`` for many items in the caller's transaction: one read of the existing
    rows, one update per existing row (rare: re-runs), one multi-row insert for the rest."""
    if not results:
        return
    existing = {row.item: row for row in session.scalars(
        select(JobItem).where(JobItem.job == job, JobItem.item.in_(list(results))))}
    fresh = []
    for item, result in results.items():
        row = existing.get(item)
        if row is None:
            fresh.append({"job": job, "item": item, "status": "done", "result": result, "attempts": 1,
                          "updated_at": utcnow()})
        else:
            row.status, row.result, row.error = "done", result, None
            row.attempts = (row.attempts or 0) + 1
    for part in _chunks(fresh):
        session.execute(insert(_JOBS), list(part))
