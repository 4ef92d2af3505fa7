"""The knowledge base of learnings: browse, trace a value to its learnings, and curate (experts)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy import select

from ...errors import InputError, NotFoundError, ShelfwiseError
from ..deps import AppDep, Expert, Reader
from ..text import MAX_DB_INT, Name, Text

router = APIRouter(prefix="/kb", tags=["knowledge base"])
# The spaces the loop itself uses; another one is accepted only once it holds learnings (made with the CLI,
# `shelfwise kb add --space NAME`), so that a typo in ?space= cannot start a new, empty knowledge base.
KNOWN_SPACES = ("production", "staging")
Space = Annotated[Name, Query(max_length=32, description="knowledge-base space: production, staging, or one "
                                                         "that already holds learnings")]
LearningId = Annotated[int, Path(ge=1, le=MAX_DB_INT)]
MAX_LIMIT = 1000  # learnings a page


@contextmanager
def _kb(sw, space: str, *, placing: bool = False, writing: bool = False) -> Iterator[Any]:  # type: ignore[no-untyped-def]
    from ...enrich.kb import KnowledgeBase
    from ...enrich.kb.models import LearningRow

    embedder = None
    if placing:  # duplicate checks want the embedder; without one they fall back to word overlap
        try:
            embedder = sw.embedder
        except ShelfwiseError:
            pass
    # No memory-manager LLM on the request path: placement uses the deterministic guards only. A write session
    # queues SQLite writers (two approvals of one learning: the second sees the first and is a 409).
    with sw.db.write_session() if placing or writing else sw.db.session() as s:
        if space not in KNOWN_SPACES and s.scalar(select(LearningRow.id).where(LearningRow.space == space)
                                                  .limit(1)) is None:
            raise NotFoundError("knowledge-base space", space,
                                fix=f"use one of {', '.join(KNOWN_SPACES)}, or create the space with "
                                    "`shelfwise kb add --space NAME`")
        yield KnowledgeBase(s, embedder=embedder, space=space)


# The limits of ``LearningDraft`` (enrich/kb/types.py), so that a bad body is a 422 naming the field.
class NewLearning(BaseModel):
    text: Text = Field(min_length=3, max_length=600, description="a concrete instruction for the workers")
    category_path: Text = Field("", max_length=512)
    attribute: Text | None = Field(None, min_length=1, max_length=128)
    examples: list[Annotated[Text, Field(max_length=600)]] = Field(default_factory=list, max_length=8,
                                                                   description="at most 8 worked examples")
    normalize: dict[Annotated[Text, Field(max_length=200)], Annotated[Text, Field(max_length=200)]] = Field(
        default_factory=dict, max_length=50, description="surface form -> canonical value")
    critical: bool = False
    status: str = Field("active", pattern="^(active|proposed)$")


class Retirement(BaseModel):
    reason: Text = Field(min_length=3, max_length=2000)


@router.get("/learnings")
def list_learnings(sw: AppDep, _: Reader, status: Literal["proposed", "active", "retired"] | None = None,
                   category: Name | None = None, attribute: Name | None = None, space: Space = "production",
                   limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
                   offset: Annotated[int, Query(ge=0, le=MAX_DB_INT)] = 0) -> list[dict[str, Any]]:
    """Learnings by category path, a page at a time (``limit`` 1-1000, ``offset``)."""
    with _kb(sw, space) as kb:
        views = kb.list(status=status, category_prefix=category, attribute=attribute)
        return [v.model_dump(mode="json") for v in views[offset:offset + limit]]


@router.get("/learnings/{learning_id}")
def get_learning(learning_id: LearningId, sw: AppDep, _: Reader, space: Space = "production") -> dict[str, Any]:
    """One learning with every version of it (what changed, why, from which evidence, by whom)."""
    with _kb(sw, space) as kb:
        return {**kb.get(learning_id).model_dump(mode="json"),
                "history": [h.model_dump(mode="json") for h in kb.history(learning_id)]}


@router.post("/learnings")
def add_learning(body: NewLearning, sw: AppDep, role: Expert, space: Space = "production") -> dict[str, Any]:
    """Add a learning by hand; the memory manager's guards place it (merge, replace or a new branch)."""
    from ...enrich.kb import Evidence, LearningDraft
    from ...enrich.schemas import schema_attribute

    with _kb(sw, space, placing=True) as kb:
        # workers match learnings to their attributes by exact name: store the schema's spelling, refuse others
        attribute = schema_attribute(kb.session, body.category_path, body.attribute) if body.attribute else None
        try:
            draft = LearningDraft(category_path=body.category_path, attribute=attribute, text=body.text,
                                  examples=body.examples, normalize=body.normalize, critical=body.critical,
                                  evidence=[Evidence(kind="expert", note=f"added through the API ({role})")])
        except ValidationError as exc:  # a limit of the draft this model does not mirror yet
            err = exc.errors()[0]
            raise InputError(f"invalid learning: {'.'.join(map(str, err['loc']))}: {err['msg']}",
                             fix="text 3-600 characters, at most 8 examples, category path up to 512") from None
        return kb.add(draft, status=body.status, actor=f"api:{role}").model_dump(mode="json")


@router.post("/learnings/{learning_id}/approve")
def approve(learning_id: LearningId, sw: AppDep, role: Expert, space: Space = "production") -> dict[str, Any]:
    with _kb(sw, space, writing=True) as kb:
        return kb.approve(learning_id, actor=f"api:{role}").model_dump(mode="json")


@router.post("/learnings/{learning_id}/retire")
def retire(learning_id: LearningId, body: Retirement, sw: AppDep, role: Expert,
           space: Space = "production") -> dict[str, Any]:
    with _kb(sw, space, writing=True) as kb:
        return kb.retire(learning_id, body.reason, actor=f"api:{role}").model_dump(mode="json")


@router.post("/learnings/{learning_id}/rollback/{version}")
def rollback(learning_id: LearningId, version: Annotated[int, Path(ge=1, le=MAX_DB_INT)], sw: AppDep,
             role: Expert, space: Space = "production") -> dict[str, Any]:
    with _kb(sw, space, writing=True) as kb:
        return kb.rollback(learning_id, version, actor=f"api:{role}").model_dump(mode="json")


@router.get("/why/{product_id}/{attribute}")
def why(product_id: Name, attribute: Name, sw: AppDep, _: Reader, space: Space = "production") -> dict[str, Any]:
    """Why a product has this value: the model, the prompt version and the learnings that were in the prompt."""
    with _kb(sw, space) as kb:
        row = kb.current_value(product_id, attribute)
        learnings = []
        for lid in row.learning_ids or []:
            try:
                learnings.append(kb.get(int(lid)).model_dump(mode="json"))
            except NotFoundError:
                learnings.append({"id": int(lid), "missing": f"not in space {space!r}"})
        return {"product_id": product_id, "attribute": attribute, "value": row.value, "status": row.status,
                "confidence": row.confidence, "model": row.model, "prompt_version": row.prompt_version,
                "batch_id": row.batch_id, "stored_at": row.created_at.isoformat() if row.created_at else None,
                "learnings": learnings}
