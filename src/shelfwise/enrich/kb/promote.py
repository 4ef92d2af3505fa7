"""Learn-then-deploy: promote the audited learnings of one space (e.g. staging) into another."""

from __future__ import annotations

from sqlalchemy import select

from ...errors import InputError
from .manager import place
from .models import SNAPSHOT_FIELDS, LearningRow
from .types import Placement

__all__ = ["promote"]


def promote(kb, from_space: str, to_space: str, *, actor: str) -> list[Placement]:  # type: ignore[no-untyped-def]
    """Active sources are placed through the memory manager (or update their earlier copy); sources retired
    since the last promotion retire their copy; unchanged ones are skipped."""
    from .base import KnowledgeBase

    if from_space == to_space:
        raise InputError("promote needs two different spaces", fix="e.g. --from staging --to production")
    target = KnowledgeBase(kb.session, embedder=kb.embedder, llm=kb.llm, space=to_space, config=kb.config)
    copies = {r.promoted_from: r for r in kb.session.scalars(
        select(LearningRow).where(LearningRow.space == to_space, LearningRow.promoted_from.is_not(None)))}
    out: list[Placement] = []
    sources = kb.session.scalars(select(LearningRow).where(LearningRow.space == from_space)
                                   .order_by(LearningRow.depth, LearningRow.id)).all()
    for src in sources:
        copy = copies.get(src.id)
        if src.status == "retired":
            if copy is not None and copy.status != "retired":
                target.retire(copy.id, f"source #{src.id} retired in {from_space}", actor=actor)
                out.append(Placement(learning_id=copy.id, action="replaced", reason="source retired"))
            continue
        if src.status != "active":
            continue
        if copy is not None:
            if all(getattr(copy, f) == getattr(src, f) for f in SNAPSHOT_FIELDS):
                out.append(Placement(learning_id=copy.id, action="skipped", reason="already promoted"))
                continue
            for name in SNAPSHOT_FIELDS:
                setattr(copy, name, getattr(src, name))
            target._rescope(copy)
            target._commit_version(copy, "promoted", f"updated from {from_space} #{src.id} v{src.version}", actor)
            out.append(Placement(learning_id=copy.id, action="replaced", reason="source changed"))
            continue
        placed = place(target, kb._draft_of(src), status="active", actor=actor, trusted=True,
                       promoted_from=src.id)
        out.append(placed)
    return out
