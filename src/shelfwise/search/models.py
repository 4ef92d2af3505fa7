"""Search tables: the memory index (query -> product scores) and the learners' replay cursor."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Float, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ..store.models import Base, utcnow

__all__ = ["MemoryEntry", "SearchCursor"]


class MemoryEntry(Base):
    """One query->product score. ``source`` is ``observed`` (clicks, carts, purchases, returns; decays with
    time) or ``predicted`` (doc2query-style queries generated offline for cold-start products)."""

    __tablename__ = "search_memory"
    __table_args__ = (UniqueConstraint("query_key", "product_id", "source", name="uq_search_memory"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    query_key: Mapped[str] = mapped_column(String(512), index=True)
    product_id: Mapped[str] = mapped_column(String(128), index=True)
    source: Mapped[str] = mapped_column(String(16), default="observed")
    score: Mapped[float] = mapped_column(Float, default=0.0)
    events: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class SearchCursor(Base):
    """How far a learner (bandit, ranker data) has replayed the event log."""

    __tablename__ = "search_cursors"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_event_id: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)
