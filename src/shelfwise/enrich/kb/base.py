"""The knowledge base of learnings: storage, lifecycle (proposed -> active -> retired), versions, rollback,
injection into prompts and the counters that measure each learning's effect.

Placement of new learnings (merge / replace / branch) is the memory manager's job (``manager.py``);
synthesis of high-volume patterns is in ``synthesis.py``. Every change writes a version snapshot and a
``LearningChange`` event in the caller's transaction."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ...errors import InputError, NotFoundError
from ...store.events import EventLog, LearningChange
from .lifecycle import AUTOMATED_ACTORS, LifecycleMixin
from .models import SNAPSHOT_FIELDS, LearningRow, LearningVersionRow
from .scope import (
    SEP,
    ancestors,
    canonical_path,
    cosine,
    depth,
    estimate_tokens,
    fold,
    path_key,
    token_jaccard,
)
from .types import Evidence, LearningDraft, LearningVersion, LearningView, Placement, TreeNode

__all__ = ["AUTOMATED_ACTORS", "KBConfig", "KnowledgeBase"]



class KBConfig(BaseModel):
    """Thresholds of the deterministic guards."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    duplicate_similarity: float = Field(0.92, gt=0, le=1, description="embedding cosine: merge without asking")
    duplicate_jaccard: float = Field(0.8, gt=0, le=1, description="word overlap when there is no embedder")
    synthesis_similarity: float = Field(0.75, gt=0, le=1, description="members of one pattern")
    max_per_node: int = Field(12, ge=2, description="learnings per (category, attribute) before compaction")
    min_group: int = Field(3, ge=2, description="branches sharing a pattern before it is lifted to the parent")
    max_siblings_in_prompt: int = Field(6, ge=1)
    max_evidence: int = Field(50, ge=1)


class KnowledgeBase(LifecycleMixin):
    """One space ("production", "staging", ...) of the knowledge base, bound to a session.

    ``embedder`` and ``llm`` (role ``memory.manager``) are optional: without them only the deterministic
    guards decide placements."""

    def __init__(self, session: Session, *, embedder: Any = None, llm: Any = None, space: str = "production",
                 config: KBConfig | None = None) -> None:
        if not space or len(space) > 32:
            raise InputError(f"invalid knowledge-base space {space!r}", fix="use a short name like 'staging'")
        self.session, self.embedder, self.llm, self.space = session, embedder, llm, space
        self.config = config or KBConfig()
        self.events = EventLog(session)
    @property
    def _cache(self) -> dict[tuple, object]:
        """Reads are cached per session and space (a batch asks for the same categories again and again);
        any change through any KnowledgeBase on this session drops the session's cache. Call ``refresh()``
        to see changes made by other sessions or processes."""
        caches = self.session.info.setdefault("shelfwise.kb.cache", {})
        return caches.setdefault(self.space, {})  # type: ignore[no-any-return]

    def refresh(self) -> None:
        """Forget cached reads (after another session or process changed the knowledge base)."""
        self.session.info.pop("shelfwise.kb.cache", None)

    # -- reading ------------------------------------------------------------------------------------
    def get(self, learning_id: int) -> LearningView:
        return self._view(self._row(learning_id))

    def list(self, status: str | None = None, category_prefix: str | None = None,
             attribute: str | None = None) -> list[LearningView]:
        key = ("list", status, category_prefix and path_key(category_prefix), attribute)
        if key in self._cache:
            return list(self._cache[key])  # type: ignore[call-overload]
        stmt = select(LearningRow).where(LearningRow.space == self.space)
        if status is not None:
            stmt = stmt.where(LearningRow.status == _status(status))
        if attribute is not None:
            stmt = stmt.where(LearningRow.attribute == attribute)
        rows = self.session.scalars(stmt.order_by(LearningRow.path_key, LearningRow.attribute, LearningRow.id))
        prefix = path_key(category_prefix) if category_prefix else ""
        out = [self._view(r) for r in rows if _under(prefix, r.path_key)]
        self._cache[key] = tuple(out)
        return out

    def relevant(self, category_path: str, attributes: Iterable[str] | None = None, *, max_items: int = 12,
                 max_tokens: int = 400, rules_only: tuple[str, ...] = ()) -> list[LearningView]:
        """Active learnings on the product's path for these attributes (or attribute-wide ones), most specific
        first (deeper category, then attribute-specific, then critical, then better supported), greedily
        packed into ``max_tokens`` as counted on ``LearningView.prompt_text``. Learnings whose examples all
        start with one of ``rules_only`` are applied by code, not read by a model, and are left out."""
        attrs = None if attributes is None else tuple(sorted(set(attributes)))
        key = ("relevant", path_key(category_path), attrs, max_items, max_tokens, rules_only)
        if key in self._cache:
            return list(self._cache[key])  # type: ignore[call-overload]
        rows = self._on_path(category_path, attrs, statuses=("active",))
        rows.sort(key=lambda r: (-r.depth, r.attribute is None, not r.critical, -r.support, r.id))
        out: list[LearningView] = []
        used = 0
        for row in rows:
            if len(out) >= max_items:
                break
            if rules_only and row.examples and all(str(e).startswith(rules_only) for e in row.examples):
                continue
            view = self._view(row)
            cost = estimate_tokens(view.prompt_text())
            if used + cost > max_tokens:
                continue  # a shorter, less specific one may still fit
            out.append(view)
            used += cost
        self._cache[key] = tuple(out)
        return out

    def normalizers(self, category_path: str, attribute: str) -> dict[str, str]:
        """Folded surface form -> canonical value from active learnings on the path; deeper ones win.
        Canonical values map to themselves too, so folding any spelling of a value finds it."""
        key = ("normalizers", path_key(category_path), attribute)
        if key in self._cache:
            return dict(self._cache[key])  # type: ignore[call-overload]
        rows = self._on_path(category_path, [attribute], statuses=("active",))
        rows.sort(key=lambda r: (r.depth, r.attribute is not None, r.id))  # general first, overridden later
        out: dict[str, str] = {}
        for row in rows:
            for surface, canon in (row.normalize or {}).items():
                out.setdefault(fold(canon), canon)
                out[fold(surface)] = canon
        self._cache[key] = dict(out)
        return out

    def history(self, learning_id: int) -> list[LearningVersion]:
        self._row(learning_id)
        rows = self.session.scalars(select(LearningVersionRow).where(LearningVersionRow.learning_id == learning_id)
                                    .order_by(LearningVersionRow.version))
        return [LearningVersion(learning_id=r.learning_id, version=r.version, action=r.action, reason=r.reason,
                                actor=r.actor, category_path=r.category_path, attribute=r.attribute, text=r.text,
                                examples=list(r.examples or []), normalize=dict(r.normalize or {}),
                                status=r.status, critical=r.critical, evidence=_evidence(r.evidence),
                                created_at=r.created_at) for r in rows]

    def current_value(self, product_id: str, attribute: str) -> Any:
        """The stored value a "why" question is about (an ``ExtractedValue`` row: model, prompt version and
        the ``learning_ids`` that were in its prompt)."""
        from ...store.models import ExtractedValue

        row = self.session.scalar(select(ExtractedValue).where(
            ExtractedValue.product_id == product_id, ExtractedValue.attribute == attribute,
            ExtractedValue.is_current.is_(True)).order_by(ExtractedValue.id.desc()))
        if row is None:
            raise NotFoundError("extracted value", f"{product_id}/{attribute}",
                                fix="check the product id and attribute, or run `shelfwise enrich` first")
        return row

    def tree(self, *, include_retired: bool = False) -> TreeNode:
        """The category tree with the learnings at each node (attribute-specific ones grouped by name)."""
        root = TreeNode(name="(all)", path="")
        index: dict[str, TreeNode] = {"": root}
        rows = self.session.scalars(select(LearningRow).where(LearningRow.space == self.space)
                                    .order_by(LearningRow.depth, LearningRow.path_key, LearningRow.attribute,
                                              LearningRow.id))
        for row in rows:
            if row.status == "retired" and not include_retired:
                continue
            parts = row.category_path.split(SEP) if row.category_path else []
            node = root
            for i, name in enumerate(parts):
                key = path_key(SEP.join(parts[: i + 1]))
                if key not in index:
                    index[key] = TreeNode(name=name, path=SEP.join(parts[: i + 1]))
                    node.children.append(index[key])
                node = index[key]
            node.learnings.append(self._view(row))
        return root

    # -- counters -----------------------------------------------------------------------------------
    def record_injection(self, learning_ids: Iterable[int]) -> None:
        """Count that these learnings were in a worker prompt (one call per prompt)."""
        self._bump("times_injected", learning_ids)

    def record_outcome(self, learning_ids: Iterable[int], *, disagreed: bool) -> None:
        """Count what happened on an attribute whose prompt carried these learnings."""
        self._bump("disagreements_after" if disagreed else "agreements_after", learning_ids)

    def _bump(self, column: str, learning_ids: Iterable[int]) -> None:
        col = getattr(LearningRow, column)
        by_count: dict[int, list[int]] = {}
        for lid, n in Counter(int(i) for i in learning_ids).items():
            by_count.setdefault(n, []).append(lid)
        for n, ids in by_count.items():
            # Atomic UPDATEs (one per distinct increment): concurrent workers must not lose counts.
            self.session.execute(update(LearningRow).where(LearningRow.id.in_(ids)).values({col: col + n}))

    # -- lifecycle ----------------------------------------------------------------------------------
    def add(self, draft: LearningDraft, *, status: str = "active", actor: str = "supervisor") -> Placement:
        """Place a new learning through the memory manager (merge, replace, new branch)."""
        from .manager import place

        return place(self, draft, status=_status(status, allow_retired=False), actor=actor)

    def promote(self, from_space: str = "staging", to_space: str = "production", *,
                actor: str = "expert") -> list[Placement]:
        """Learn-then-deploy: copy the audited (active) learnings of one space into another through the memory
        manager, and retire copies whose source was retired since. Idempotent."""
        from .promote import promote

        return promote(self, from_space, to_space, actor=actor)

    def synthesize(self, category_prefix: str | None = None, *, actor: str = "synthesis") -> list[Placement]:
        """Lift patterns repeated across sibling branches into one broader learning at their parent, and
        compact nodes over the size limit. Critical and one-off learnings stay individual."""
        from .synthesis import synthesize

        return synthesize(self, category_prefix, actor=actor)

    # -- internals shared with the manager and synthesis --------------------------------------------
    def _row(self, learning_id: int) -> LearningRow:
        row = self.session.get(LearningRow, int(learning_id))
        if row is None or row.space != self.space:
            raise NotFoundError("learning", learning_id, fix=f"list learnings with `shelfwise kb list --space "
                                f"{self.space}`")
        return row

    def _on_path(self, category_path: str, attributes: Iterable[str] | None, *,
                 statuses: tuple[str, ...]) -> list[LearningRow]:
        stmt = select(LearningRow).where(LearningRow.space == self.space, LearningRow.status.in_(statuses),
                                         LearningRow.path_key.in_(ancestors(category_path)))
        attrs = list(attributes) if attributes is not None else None
        if attrs is not None:
            stmt = stmt.where(LearningRow.attribute.in_(attrs) | LearningRow.attribute.is_(None))
        return list(self.session.scalars(stmt))

    def _embed(self, text: str) -> tuple[list[float] | None, str | None]:
        if self.embedder is None:
            return None, None
        vec = self.embedder.embed([text])[0]
        return [round(float(x), 6) for x in vec], str(getattr(self.embedder, "name", "embedder"))

    def _similarity(self, row: LearningRow, text: str, vec: list[float] | None) -> float:
        if fold(row.text) == fold(text):
            return 1.0
        if vec is not None and self.embedder is not None:
            if row.embedding is None or row.embedding_model != str(getattr(self.embedder, "name", "embedder")):
                row.embedding, row.embedding_model = self._embed(row.text)  # the embedder changed: refresh
            return cosine(row.embedding, vec)
        return token_jaccard(row.text, text)

    def _duplicate_threshold(self) -> float:
        cfg = self.config
        return cfg.duplicate_similarity if self.embedder is not None else cfg.duplicate_jaccard

    def _rescope(self, row: LearningRow) -> None:
        row.category_path = canonical_path(row.category_path)
        row.path_key, row.depth = path_key(row.category_path), depth(row.category_path)

    def _commit_version(self, row: LearningRow, action: str, reason: str, actor: str,
                        evidence: list[Evidence] | None = None) -> None:
        """Bump the version, write the snapshot and the event (the caller's transaction commits)."""
        self.refresh()
        if row.id is None:
            self.session.add(row)
            self.session.flush()
        else:
            row.version = (row.version or 0) + 1
        event_id = self.events.append(LearningChange(learning_id=row.id, action=action, reason=reason[:1000],
                                                     actor=actor, version=row.version, space=self.space))
        snap = {name: getattr(row, name) for name in SNAPSHOT_FIELDS}
        self.session.add(LearningVersionRow(
            learning_id=row.id, version=row.version, action=action, reason=reason[:4000], actor=actor[:128],
            evidence=[e.model_dump(mode="json") for e in (evidence or [])], event_id=event_id, **snap))
        self.session.flush()

    def _view(self, row: LearningRow) -> LearningView:
        return LearningView(id=row.id, category_path=row.category_path, attribute=row.attribute, text=row.text,
                            examples=list(row.examples or []), normalize=dict(row.normalize or {}),
                            status=row.status, version=row.version, critical=row.critical, space=row.space,
                            origin=row.origin, support=row.support, times_injected=row.times_injected or 0,
                            disagreements_after=row.disagreements_after or 0,
                            agreements_after=row.agreements_after or 0, evidence=_evidence(row.evidence),
                            updated_at=row.updated_at)

    @staticmethod
    def _draft_of(row: LearningRow) -> LearningDraft:
        return LearningDraft(category_path=row.category_path, attribute=row.attribute, text=row.text,
                             examples=list(row.examples or [])[:8], normalize=dict(row.normalize or {}),
                             critical=row.critical, evidence=_evidence(row.evidence)[:20])


def _status(value: str, *, allow_retired: bool = True) -> str:
    allowed = ("proposed", "active", "retired") if allow_retired else ("proposed", "active")
    if value not in allowed:
        raise InputError(f"invalid learning status {value!r}", fix=f"use one of {', '.join(allowed)}")
    return value


def _under(prefix_key: str, key: str) -> bool:
    return not prefix_key or key == prefix_key or key.startswith(prefix_key + SEP)


def _evidence(raw: Any) -> list[Evidence]:
    return [Evidence.model_validate(e) for e in (raw or [])]
