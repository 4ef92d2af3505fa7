"""The enrichment loop's human side: the review queue, the health report, seller and customer feedback."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field

from ..deps import AppDep, Expert, Reader, Writer
from ..text import MAX_DB_INT, Name, Text

router = APIRouter(tags=["enrich"])
MAX_LIMIT = 1000  # items a page
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description=f"at most this many (1-{MAX_LIMIT})")]
Offset = Annotated[int, Query(ge=0, le=MAX_DB_INT, description="skip this many first")]
ItemId = Annotated[int, Path(ge=1, le=MAX_DB_INT)]
ProductId = Annotated[Name, Field(max_length=128)]


class Resolution(BaseModel):
    value: Text | None = Field(max_length=2000,
                               description="the correct value; null when the listing does not state it")
    learn: bool = Field(True, description="also write a learning where the value generalises")


class Appeal(BaseModel):
    product_id: ProductId
    message: Text = Field(description="the seller's message; stored as untrusted data, never as instructions")
    attribute: Text | None = Field(None, max_length=128)
    claimed_value: Text | None = None
    seller_id: Text | None = Field(None, max_length=128)


class Return(BaseModel):
    product_id: ProductId
    reason: Text = Field(description="the customer's reason; untrusted data")
    customer_id: Text | None = Field(None, max_length=128)
    query: Text | None = Field(None, max_length=2000)


class Review(BaseModel):
    product_id: ProductId
    rating: int = Field(ge=1, le=5)
    text: Text = Field(description="untrusted data")
    customer_id: Text | None = Field(None, max_length=128)


@router.get("/review")
def review_list(sw: AppDep, _: Reader, status: Literal["open", "resolved", "all"] = "open",
                limit: Limit = 100) -> list[dict[str, Any]]:
    """Cases waiting for a person (``status=open|resolved|all``)."""
    from ...enrich import ReviewQueue

    with sw.db.session() as s:
        items = ReviewQueue(s).list(None if status == "all" else status, limit=limit)
        return [i.model_dump(mode="json") for i in items]


@router.post("/review/{item_id}/resolve")
def review_resolve(item_id: ItemId, body: Resolution, sw: AppDep, role: Expert) -> dict[str, Any]:
    """Settle a case: the value becomes a label and, where it generalises, a learning. A case settled already
    (or by a concurrent request) is a 409: exactly one answer wins."""
    from ...enrich import ReviewQueue
    from ...enrich.kb import KnowledgeBase

    with sw.db.write_session() as s:  # SQLite: writers queue here instead of failing on a stale read
        kb = KnowledgeBase(s, embedder=sw.embedder, space="production")
        view = ReviewQueue(s, kb).resolve(item_id, body.value, actor=f"api:{role}", learn=body.learn)
        return view.model_dump(mode="json")


@router.get("/enrich/health")
def health(sw: AppDep, _: Reader, category: Name | None = None, limit: Limit = 100,
           offset: Offset = 0) -> dict[str, Any]:
    """Disagreement and supervisor-call rates per batch and per attribute, and the learnings' effect.
    ``limit``/``offset`` page both lists (batches in run order, attributes as ranked)."""
    from ...enrich.health import health_report

    with sw.db.session() as s:
        report = health_report(s, category_prefix=category).model_dump(mode="json")
    return {**report, "batches": report["batches"][offset:offset + limit],
            "attributes": report["attributes"][offset:offset + limit],
            "total": {"batches": len(report["batches"]), "attributes": len(report["attributes"])}}


@router.post("/feedback/appeal")
def appeal(body: Appeal, sw: AppDep, _: Writer) -> dict[str, int]:
    from ...enrich.feedback import record_appeal

    with sw.db.session() as s:
        return {"event_id": record_appeal(s, body.product_id, message=body.message, attribute=body.attribute,
                                          claimed_value=body.claimed_value, seller_id=body.seller_id)}


@router.post("/feedback/return")
def customer_return(body: Return, sw: AppDep, _: Writer) -> dict[str, int]:
    from ...enrich.feedback import record_return

    with sw.db.session() as s:
        return {"event_id": record_return(s, body.product_id, reason=body.reason, customer_id=body.customer_id,
                                          query=body.query)}


@router.post("/feedback/review")
def customer_review(body: Review, sw: AppDep, _: Writer) -> dict[str, int]:
    from ...enrich.feedback import record_review

    with sw.db.session() as s:
        return {"event_id": record_review(s, body.product_id, rating=body.rating, text=body.text,
                                          customer_id=body.customer_id)}
