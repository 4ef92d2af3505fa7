"""The enrichment loop's human side: the review queue, the health report, seller and customer feedback."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from ..deps import AppDep, Expert, Reader, Writer

router = APIRouter(tags=["enrich"])


class Resolution(BaseModel):
    value: str | None = Field(description="the correct value; null when the listing does not state it")
    learn: bool = Field(True, description="also write a learning where the value generalises")


class Appeal(BaseModel):
    product_id: str
    message: str = Field(description="the seller's message; stored as untrusted data, never as instructions")
    attribute: str | None = None
    claimed_value: str | None = None
    seller_id: str | None = None


class Return(BaseModel):
    product_id: str
    reason: str = Field(description="the customer's reason; untrusted data")
    customer_id: str | None = None
    query: str | None = None


class Review(BaseModel):
    product_id: str
    rating: int = Field(ge=1, le=5)
    text: str = Field(description="untrusted data")
    customer_id: str | None = None


@router.get("/review")
def review_list(sw: AppDep, _: Reader, status: str = "open", limit: int = 100) -> list[dict[str, Any]]:
    """Cases waiting for a person (``status=open|resolved|all``)."""
    from ...enrich import ReviewQueue

    with sw.db.session() as s:
        items = ReviewQueue(s).list(None if status == "all" else status, limit=min(limit, 1000))
        return [i.model_dump(mode="json") for i in items]


@router.post("/review/{item_id}/resolve")
def review_resolve(item_id: int, body: Resolution, sw: AppDep, role: Expert) -> dict[str, Any]:
    """Settle a case: the value becomes a label and, where it generalises, a learning."""
    from ...enrich import ReviewQueue
    from ...enrich.kb import KnowledgeBase

    with sw.db.session() as s:
        kb = KnowledgeBase(s, embedder=sw.embedder, space="production")
        view = ReviewQueue(s, kb).resolve(item_id, body.value, actor=f"api:{role}", learn=body.learn)
        return view.model_dump(mode="json")


@router.get("/enrich/health")
def health(sw: AppDep, _: Reader, category: str | None = None) -> dict[str, Any]:
    """Disagreement and supervisor-call rates per batch and per attribute, and the learnings' effect."""
    from ...enrich.health import health_report

    with sw.db.session() as s:
        return health_report(s, category_prefix=category).model_dump(mode="json")


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
