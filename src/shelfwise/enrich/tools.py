"""The supervisor's tools: small read-only look-ups over the event log, the core tables, the knowledge base
and the intent provider. Each returns plain text (the supervisor quotes it as data)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from ..store.catalog import AttributeSchema, Listing
from ..store.events import EventLog
from ..store.models import ExtractedValue, Product
from .workers import format_learnings

__all__ = ["NeighbourIndex", "build_tools"]

RESOLVED = ("supervised", "human", "gold")


class NeighbourIndex:
    """Title embeddings of resolved products, cached across calls (titles rarely change)."""

    def __init__(self, embedder: Any) -> None:
        self.embedder = embedder
        self._vectors: dict[str, np.ndarray] = {}

    def nearest(self, title: str, candidates: dict[str, str], k: int = 3) -> list[str]:
        if self.embedder is None or not candidates:
            return list(candidates)[:k]
        missing = [pid for pid in candidates if pid not in self._vectors]
        if missing:
            for pid, vec in zip(missing, self.embedder.embed([candidates[p] for p in missing]), strict=True):
                self._vectors[pid] = vec
        query = self.embedder.embed([title])[0]
        ids = list(candidates)
        scores = np.stack([self._vectors[p] for p in ids]) @ query
        return [ids[i] for i in np.argsort(-scores)[:k]]


def _history(session: Session, product_id: str) -> str:
    lines = []
    for ev in EventLog(session).read(["listing_updated", "extraction", "supervisor_ruling"], product_id=product_id,
                                     limit=20):
        e = ev.event
        if e.type == "listing_updated":
            lines.append(f"listing edited (v{e.version}): {', '.join(e.changed_fields)}")
        elif e.type == "extraction":
            lines.append(f"{e.attribute} = {e.value!r} ({e.status})")
        else:
            lines.append(f"supervisor: {e.attribute} = {e.value!r} ({e.why_disagreed})")
    return "\n".join(lines) or "no history"


def _feedback(session: Session, product_id: str, seller_id: str | None) -> str:
    log, lines = EventLog(session), []
    for ev in log.read(["review", "customer_return", "seller_appeal"], product_id=product_id, limit=10):
        e = ev.event
        if e.type == "review":
            lines.append(f"review {e.rating}/5: {e.text[:200]}")
        elif e.type == "customer_return":
            lines.append(f"return: {e.reason[:200]}")
        else:
            lines.append(f"seller appeal on {e.attribute}: claims {e.claimed_value!r}: {e.message[:200]}")
    if seller_id:
        others = set(session.scalars(select(Product.id).where(Product.seller_id == seller_id,
                                                              Product.id != product_id).limit(50)))
        appeals = sum(1 for ev in log.read("seller_appeal", limit=500) if ev.event.product_id in others)
        lines.append(f"seller {seller_id}: {len(others)} other listings, {appeals} appeals on them")
    return "\n".join(lines) or "no reviews, returns or appeals"


def _similar(session: Session, index: NeighbourIndex, listing: Listing, attribute: str) -> str:
    rows = session.execute(
        select(ExtractedValue.product_id, ExtractedValue.value, Product.title)
        .join(Product, Product.id == ExtractedValue.product_id)
        .where(ExtractedValue.attribute == attribute, ExtractedValue.is_current.is_(True),
               ExtractedValue.status.in_(RESOLVED), Product.category_path == listing.category_path,
               ExtractedValue.product_id != listing.id)
        .order_by(ExtractedValue.id.desc()).limit(200)).all()
    titles = {pid: title for pid, _v, title in rows}
    values = {pid: v for pid, v, _t in rows}
    best = index.nearest(listing.title, titles)
    return "\n".join(f"{titles[p][:100]} -> {attribute}: {values[p]!r}" for p in best) or "no resolved neighbours"


def build_tools(session: Session, listing: Listing, schema: AttributeSchema, *, kb: Any,
                index: NeighbourIndex, intents: Any = None) -> dict[str, Callable[[str], str]]:
    """The supervisor's tool box for one product."""
    specs = {a.name: a for a in schema.attributes}

    def schema_tool(attribute: str) -> str:
        a = specs.get(attribute)
        if a is None:
            return f"attributes: {', '.join(specs)}"
        return f"{a.name}: {a.description}; type {a.type}; examples: {', '.join(a.examples)}" + (
            f"; allowed: {', '.join(a.allowed_values)}" if a.allowed_values else "")

    def knowledge(attribute: str) -> str:
        attrs = [attribute] if attribute in specs else list(specs)
        return format_learnings(kb.relevant(listing.category_path, attrs, max_items=8, max_tokens=300)) or "none"

    tools: dict[str, Callable[[str], str]] = {
        "history": lambda _arg: _history(session, listing.id),
        "feedback": lambda _arg: _feedback(session, listing.id, listing.seller_id),
        "similar": lambda arg: _similar(session, index, listing, arg if arg in specs else next(iter(specs))),
        "schema": schema_tool,
        "knowledge": knowledge,
    }
    if intents is not None:
        tools["intents"] = lambda _arg: "\n".join(f"{i} ({s:.2f})" for i, s in intents.product_intents(listing.id, 5)) \
            or "no intents"
    return tools
