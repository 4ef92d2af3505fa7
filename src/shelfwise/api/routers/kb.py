"""The knowledge base of learnings: browse, trace a value to its learnings, and curate (experts)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from ...errors import NotFoundError, ShelfwiseError
from ..deps import AppDep, Expert, Reader

router = APIRouter(prefix="/kb", tags=["knowledge base"])
Space = Annotated[str, Query(description="knowledge-base space: production, staging, ...")]


@contextmanager
def _kb(sw, space: str, *, placing: bool = False) -> Iterator[Any]:  # type: ignore[no-untyped-def]
    from ...enrich.kb import KnowledgeBase

    embedder = None
    if placing:  # duplicate checks want the embedder; without one they fall back to word overlap
        try:
            embedder = sw.embedder
        except ShelfwiseError:
            pass
    # No memory-manager LLM on the request path: placement uses the deterministic guards only.
    with sw.db.session() as s:
        yield KnowledgeBase(s, embedder=embedder, space=space)


class NewLearning(BaseModel):
    text: str = Field(min_length=3, max_length=600, description="a concrete instruction for the workers")
    category_path: str = ""
    attribute: str | None = None
    examples: list[str] = Field(default_factory=list)
    normalize: dict[str, str] = Field(default_factory=dict, description="surface form -> canonical value")
    critical: bool = False
    status: str = Field("active", pattern="^(active|proposed)$")


class Retirement(BaseModel):
    reason: str = Field(min_length=3, max_length=2000)


@router.get("/learnings")
def list_learnings(sw: AppDep, _: Reader, status: str | None = None, category: str | None = None,
                   attribute: str | None = None, space: Space = "production") -> list[dict[str, Any]]:
    with _kb(sw, space) as kb:
        return [v.model_dump(mode="json") for v in kb.list(status=status, category_prefix=category,
                                                            attribute=attribute)]


@router.get("/learnings/{learning_id}")
def get_learning(learning_id: int, sw: AppDep, _: Reader, space: Space = "production") -> dict[str, Any]:
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
        draft = LearningDraft(category_path=body.category_path, attribute=attribute, text=body.text,
                              examples=body.examples, normalize=body.normalize, critical=body.critical,
                              evidence=[Evidence(kind="expert", note=f"added through the API ({role})")])
        return kb.add(draft, status=body.status, actor=f"api:{role}").model_dump(mode="json")


@router.post("/learnings/{learning_id}/approve")
def approve(learning_id: int, sw: AppDep, role: Expert, space: Space = "production") -> dict[str, Any]:
    with _kb(sw, space) as kb:
        return kb.approve(learning_id, actor=f"api:{role}").model_dump(mode="json")


@router.post("/learnings/{learning_id}/retire")
def retire(learning_id: int, body: Retirement, sw: AppDep, role: Expert,
           space: Space = "production") -> dict[str, Any]:
    with _kb(sw, space) as kb:
        return kb.retire(learning_id, body.reason, actor=f"api:{role}").model_dump(mode="json")


@router.post("/learnings/{learning_id}/rollback/{version}")
def rollback(learning_id: int, version: int, sw: AppDep, role: Expert,
             space: Space = "production") -> dict[str, Any]:
    with _kb(sw, space) as kb:
        return kb.rollback(learning_id, version, actor=f"api:{role}").model_dump(mode="json")


@router.get("/why/{product_id}/{attribute}")
def why(product_id: str, attribute: str, sw: AppDep, _: Reader, space: Space = "production") -> dict[str, Any]:
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
