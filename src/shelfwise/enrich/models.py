"""Tables of the enrichment loop: batches (for resume), per-batch health counters, the human review queue.

Extracted values themselves live in the core ``extracted_values`` table; learnings in ``enrich.kb``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Float, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ..store.models import Base, utcnow

__all__ = ["EnrichBatch", "EnrichBatchStat", "ReviewItem"]


class EnrichBatch(Base):
    """One batch of products; ``running`` batches are resumed before a new one starts."""

    __tablename__ = "enrich_batches"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, index=True)
    product_ids: Mapped[list[Any]] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(16), default="running")  # running | done
    summary: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class EnrichBatchStat(Base):
    """Health counters for one (batch, category, attribute); attribute "*" holds the per-product costs."""

    __tablename__ = "enrich_batch_stats"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    batch_id: Mapped[str] = mapped_column(String(64), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    category_path: Mapped[str] = mapped_column(String(512), default="")
    attribute: Mapped[str] = mapped_column(String(128))
    products: Mapped[int] = mapped_column(Integer, default=0)
    decided: Mapped[int] = mapped_column(Integer, default=0)  # attribute slots with a candidate value
    disagreements: Mapped[int] = mapped_column(Integer, default=0)
    supervisor_calls: Mapped[int] = mapped_column(Integer, default=0)
    reviews: Mapped[int] = mapped_column(Integer, default=0)
    tokens: Mapped[int] = mapped_column(Integer, default=0)
    seconds: Mapped[float] = mapped_column(Float, default=0.0)
    learnings: Mapped[int] = mapped_column(Integer, default=0)  # learnings written in this batch
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class ReviewItem(Base):
    """A case the supervisor could not settle with confidence (or a spot check of a settled one), waiting for a
    person."""

    __tablename__ = "enrich_review_items"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    product_id: Mapped[str] = mapped_column(String(128), index=True)
    category_path: Mapped[str] = mapped_column(String(512), default="")
    attribute: Mapped[str] = mapped_column(String(128))
    candidates: Mapped[list[Any]] = mapped_column(JSON, default=list)
    proposed: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Whose value ``proposed`` is: NULL for the supervisor; a worker or "evaluator" when the item is an audit
    # sample of a dispute the track record settled (LoopConfig.audit_settled): the record must not score the
    # supervisor on a value it never gave.
    proposed_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    # The model behind each source (worker role, "evaluator", "supervisor") when the item was opened: the
    # track record leaves out answers about a model a role no longer runs. NULL on items from before.
    models: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    confidence: Mapped[float] = mapped_column(Float, default=0.0)
    reason: Mapped[str] = mapped_column(Text, default="")
    batch_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="open", index=True)  # open | resolved
    resolution: Mapped[str | None] = mapped_column(Text, nullable=True)
    resolved_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    learning_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
