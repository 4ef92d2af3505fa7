"""Set-at-a-time writes for a group of enriched products: one statement per kind of row instead of one per
value. This is what keeps the loop's own overhead (model time excluded) far below the model's: a product
costs a handful of rows, and per-row ORM round trips cost more than the rest of the loop together. Events go
through ``EventLog.append_many`` and job marks through ``JobTracker.mark_many_done`` (the store's own batch
writers); the values, which only the loop writes, are here."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import insert, tuple_, update
from sqlalchemy.orm import Session

from ..store.models import ExtractedValue, utcnow

__all__ = ["store_values"]

# Core tables, not ORM classes: ORM bulk inserts spend more per row than the database does.
_VALUES = ExtractedValue.__table__
_CHUNK = 400  # rows per statement: well inside SQLite's bound-parameter limit


def _chunks(items: Sequence[Any], n: int = _CHUNK) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), n):
        yield items[i: i + n]


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
