"""Expert-facing lifecycle of a learning: edit, approve, retire, roll back. Each change is a new version
(``_commit_version``), so nothing is ever lost; feedback-derived learnings need a named person."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from ...errors import ConflictError, InputError
from .models import SNAPSHOT_FIELDS, LearningRow, LearningVersionRow
from .scope import canonical_path
from .types import LearningDraft, LearningView

__all__ = ["AUTOMATED_ACTORS", "LifecycleMixin"]

# Actors that are programs, not people: they may not approve a learning that came from seller/customer text.
AUTOMATED_ACTORS = frozenset({"supervisor", "memory.manager", "feedback", "synthesis", "promote", "system", "loop"})


class LifecycleMixin:
    """Mixed into ``KnowledgeBase``; relies on its ``_row``, ``_rescope``, ``_embed``, ``_commit_version``
    and ``_view``.

    Every change locks the learning's row first (``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite callers
    serialise writers with ``Database.write_session``), so two concurrent changes see each other: the second
    approve of one learning is a ``ConflictError``, not a duplicate version."""

    def _locked(self, learning_id: int) -> LearningRow:
        row = self._row(learning_id)
        self.session.refresh(row, with_for_update=True)  # re-read under the lock: another change may have won
        return row

    def _commit_change(self, row: LearningRow, action: str, reason: str, actor: str) -> None:
        try:
            self._commit_version(row, action, reason, actor)
        except IntegrityError:  # version (learning, n) written by a concurrent change that did not lock
            raise ConflictError(f"learning {row.id} was changed by someone else at the same time",
                                fix=f"reload it (`shelfwise kb show {row.id}`) and try again") from None

    def edit(self, learning_id: int, *, text: str | None = None, examples: list[str] | None = None,
             normalize: dict[str, str] | None = None, critical: bool | None = None,
             category_path: str | None = None, attribute: str | None = None, actor: str = "expert",
             reason: str = "") -> LearningView:
        row = self._locked(learning_id)
        changes: dict[str, Any] = {"text": text, "examples": examples, "normalize": normalize, "critical": critical,
                                   "attribute": attribute}
        changes = {k: v for k, v in changes.items() if v is not None}
        if category_path is not None:
            changes["category_path"] = canonical_path(category_path)
        if not changes:
            raise InputError("nothing to edit", fix="pass at least one of text, examples, normalize, critical, "
                             "category_path, attribute")
        try:  # validate the new content with the same rules as a new learning
            LearningDraft(category_path=changes.get("category_path", row.category_path),
                          attribute=changes.get("attribute", row.attribute), text=changes.get("text", row.text),
                          examples=changes.get("examples", row.examples),
                          normalize=changes.get("normalize", row.normalize))
        except ValidationError as exc:
            err = exc.errors()[0]
            raise InputError(f"invalid edit of learning {learning_id}: {'.'.join(map(str, err['loc']))}: "
                             f"{err['msg']}", fix="text is 3-600 characters, at most 8 examples") from None
        for key, value in changes.items():
            setattr(row, key, value)
        self._rescope(row)
        if "text" in changes:
            row.embedding, row.embedding_model = self._embed(row.text)
        self._commit_change(row, "edited", reason or f"edited {', '.join(sorted(changes))}", actor)
        return self._view(row)

    def approve(self, learning_id: int, *, actor: str = "expert", reason: str = "") -> LearningView:
        row = self._locked(learning_id)
        if row.status != "proposed":
            raise ConflictError(f"learning {learning_id} is {row.status}, not proposed",
                             fix="only proposed learnings can be approved; use rollback to restore a retired one")
        if row.untrusted and actor in AUTOMATED_ACTORS:
            raise InputError(f"learning {learning_id} comes from seller/customer feedback and needs a person's "
                             f"approval, not {actor!r}", fix="approve it as a named expert after reviewing it")
        row.status = "active"
        self._commit_change(row, "approved", reason or "approved", actor)
        return self._view(row)

    def retire(self, learning_id: int, reason: str, *, actor: str = "expert") -> LearningView:
        row = self._locked(learning_id)
        if row.status == "retired":
            raise ConflictError(f"learning {learning_id} is already retired", fix="nothing to do")
        if not reason.strip():
            raise InputError("retiring a learning needs a reason", fix="say why it is wrong or outdated")
        row.status = "retired"
        self._commit_change(row, "retired", reason, actor)
        return self._view(row)

    def rollback(self, learning_id: int, version: int, *, actor: str = "expert", reason: str = "") -> LearningView:
        """Restore the content and status of an earlier version, as a new version (history is never lost)."""
        row = self._locked(learning_id)
        snap = self.session.scalar(select(LearningVersionRow).where(
            LearningVersionRow.learning_id == learning_id, LearningVersionRow.version == version))
        if snap is None or version >= row.version:
            raise InputError(f"learning {learning_id} has no earlier version {version} (current is {row.version})",
                             fix=f"pick a version from `shelfwise kb history {learning_id}`")
        if snap.status == "active" and row.untrusted and actor in AUTOMATED_ACTORS:
            raise InputError("an automated actor cannot re-activate a feedback-derived learning",
                             fix="roll back as a named expert")
        for name in SNAPSHOT_FIELDS:
            setattr(row, name, getattr(snap, name))
        self._rescope(row)
        row.embedding, row.embedding_model = self._embed(row.text)
        self._commit_change(row, "rolled_back", reason or f"rolled back to version {version}", actor)
        return self._view(row)
