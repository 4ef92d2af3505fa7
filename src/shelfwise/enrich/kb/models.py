"""Tables of the knowledge base: the current state of each learning and its full version history."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ...store.models import Base, utcnow

__all__ = ["SNAPSHOT_FIELDS", "LearningRow", "LearningVersionRow"]

# What a version snapshot restores on rollback (and what promotion compares).
SNAPSHOT_FIELDS = ("category_path", "attribute", "text", "examples", "normalize", "critical", "status")


class LearningRow(Base):
    """The current version of one learning. ``path_key`` is the lower-cased canonical category path, so
    lookups by a product's ancestors are exact index hits whatever the casing of the source data."""

    __tablename__ = "kb_learnings"
    __table_args__ = (Index("ix_kb_learnings_scope", "space", "path_key", "attribute", "status"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    space: Mapped[str] = mapped_column(String(32), default="production")
    category_path: Mapped[str] = mapped_column(String(512), default="")
    path_key: Mapped[str] = mapped_column(String(512), default="")
    depth: Mapped[int] = mapped_column(Integer, default=0)
    attribute: Mapped[str | None] = mapped_column(String(128), nullable=True)
    text: Mapped[str] = mapped_column(Text)
    examples: Mapped[list[Any]] = mapped_column(JSON, default=list)
    normalize: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    critical: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(16), default="active")
    version: Mapped[int] = mapped_column(Integer, default=1)
    origin: Mapped[str] = mapped_column(String(32), default="supervisor")
    untrusted: Mapped[bool] = mapped_column(Boolean, default=False)
    support: Mapped[int] = mapped_column(Integer, default=1)
    evidence: Mapped[list[Any]] = mapped_column(JSON, default=list)
    # Deferred: 384 floats as JSON are the bulk of a row and only placement needs them.
    embedding: Mapped[list[Any] | None] = mapped_column(JSON, nullable=True, deferred=True)
    embedding_model: Mapped[str | None] = mapped_column(String(128), nullable=True)
    promoted_from: Mapped[int | None] = mapped_column(Integer, nullable=True)
    times_injected: Mapped[int] = mapped_column(Integer, default=0)
    disagreements_after: Mapped[int] = mapped_column(Integer, default=0)
    agreements_after: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)


class LearningVersionRow(Base):
    """An immutable snapshot written on every change (create, merge, replace, edit, approve, retire,
    rollback, promote): what the learning was, why it changed, from which evidence and by whom."""

    __tablename__ = "kb_learning_versions"
    __table_args__ = (UniqueConstraint("learning_id", "version", name="uq_kb_learning_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    learning_id: Mapped[int] = mapped_column(Integer, index=True)
    version: Mapped[int] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(Text, default="")
    actor: Mapped[str] = mapped_column(String(128), default="")
    category_path: Mapped[str] = mapped_column(String(512), default="")
    attribute: Mapped[str | None] = mapped_column(String(128), nullable=True)
    text: Mapped[str] = mapped_column(Text)
    examples: Mapped[list[Any]] = mapped_column(JSON, default=list)
    normalize: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    critical: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(16))
    evidence: Mapped[list[Any]] = mapped_column(JSON, default=list)
    event_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
