"""The intent graph's tables (Alembic branch "graph").

    graph_candidates ──(kept)──▶ graph_edges ──▶ graph_intents (shared tail nodes)
          │                          └──▶ graph_edge_products (indexed: intents of a product)
          └──▶ graph_annotation_items ──▶ graph_annotations (one row per annotator, machine labels flagged)
    graph_relations (seed / proposed / accepted relation types)   graph_cache (two-tier serving cache)
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ..store.models import Base, utcnow

__all__ = [
    "GraphAnnotation",
    "GraphAnnotationItem",
    "GraphCacheEntry",
    "GraphCandidate",
    "GraphEdge",
    "GraphEdgeProduct",
    "GraphIntent",
    "GraphRelation",
]


class GraphCandidate(Base):
    """One generated explanation, with the cascade stage that dropped it (or ``kept``) and why."""

    __tablename__ = "graph_candidates"
    __table_args__ = (UniqueConstraint("pair_key", "relation", "tail", name="uq_graph_candidate"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    pair_key: Mapped[str] = mapped_column(String(400), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # search_buy | co_buy
    query: Mapped[str | None] = mapped_column(Text, nullable=True)
    product_ids: Mapped[list[Any]] = mapped_column(JSON, default=list)
    relation: Mapped[str] = mapped_column(String(64))
    tail: Mapped[str] = mapped_column(String(200))
    rank: Mapped[int] = mapped_column(Integer, default=0)
    stage: Mapped[str] = mapped_column(String(32), default="new", index=True)  # stage that dropped it | kept
    reason: Mapped[str] = mapped_column(Text, default="")
    scores: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    model: Mapped[str] = mapped_column(String(128), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class GraphIntent(Base):
    __tablename__ = "graph_intents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    text: Mapped[str] = mapped_column(String(200), unique=True)


class GraphEdge(Base):
    """<head, relation, intent> with scores, support count and provenance (candidate ids, model, source)."""

    __tablename__ = "graph_edges"
    __table_args__ = (UniqueConstraint("head", "relation", "intent_id", name="uq_graph_edge"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    head: Mapped[str] = mapped_column(String(400), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    query: Mapped[str | None] = mapped_column(Text, nullable=True)
    relation: Mapped[str] = mapped_column(String(64))
    intent_id: Mapped[int] = mapped_column(ForeignKey("graph_intents.id"), index=True)
    plausibility: Mapped[float | None] = mapped_column(Float, nullable=True)
    typicality: Mapped[float | None] = mapped_column(Float, nullable=True)
    support: Mapped[int] = mapped_column(Integer, default=1)
    provenance: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class GraphEdgeProduct(Base):
    __tablename__ = "graph_edge_products"

    edge_id: Mapped[int] = mapped_column(ForeignKey("graph_edges.id", ondelete="CASCADE"), primary_key=True)
    product_id: Mapped[str] = mapped_column(String(128), primary_key=True, index=True)


class GraphAnnotationItem(Base):
    __tablename__ = "graph_annotation_items"

    candidate_id: Mapped[int] = mapped_column(ForeignKey("graph_candidates.id"), primary_key=True)
    weight: Mapped[float] = mapped_column(Float, default=1.0)
    status: Mapped[str] = mapped_column(String(16), default="open")  # open | tiebreak | resolved
    resolved: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    queued_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class GraphAnnotation(Base):
    __tablename__ = "graph_annotations"
    __table_args__ = (UniqueConstraint("candidate_id", "annotator", name="uq_graph_annotation"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    candidate_id: Mapped[int] = mapped_column(ForeignKey("graph_candidates.id"), index=True)
    annotator: Mapped[str] = mapped_column(String(128))
    machine: Mapped[bool] = mapped_column(Boolean, default=False)
    answers: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class GraphRelation(Base):
    __tablename__ = "graph_relations"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    description: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default="proposed")  # proposed | accepted | rejected
    support: Mapped[int] = mapped_column(Integer, default=0)
    examples: Mapped[list[Any]] = mapped_column(JSON, default=list)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)


class GraphCacheEntry(Base):
    """Serving cache rows: tier 1 (precomputed, frequent queries) and tier 2 (batch-filled misses).
    ``status = pending`` marks a miss waiting for the batch job."""

    __tablename__ = "graph_cache"

    query: Mapped[str] = mapped_column(String(400), primary_key=True)
    tier: Mapped[int] = mapped_column(Integer, default=2)
    status: Mapped[str] = mapped_column(String(16), default="ready")  # ready | pending
    hits: Mapped[list[Any]] = mapped_column(JSON, default=list)
    misses: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)
