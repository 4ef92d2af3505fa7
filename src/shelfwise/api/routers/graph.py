"""The intent knowledge graph: a product's intents, an intent's products, navigation, recommendation."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from ..deps import AppDep, Reader
from ..text import Name, Text

router = APIRouter(prefix="/graph", tags=["intent graph"])


MAX_SESSION_ITEMS = 100  # products or queries a session: a shopper's session, not a catalog dump


class Session(BaseModel):
    product_ids: list[Annotated[Name, Field(max_length=128)]] = Field(
        default_factory=list, max_length=MAX_SESSION_ITEMS, description="products viewed or bought in the session")
    queries: list[Annotated[Text, Field(max_length=500)]] = Field(default_factory=list, max_length=MAX_SESSION_ITEMS)


@router.get("/stats")
def stats(sw: AppDep, _: Reader) -> dict[str, Any]:
    from ...graph import AnnotationQueue, GraphStore

    with sw.db.session() as s:
        return {"graph": GraphStore(s).stats(), "annotation": AnnotationQueue(s).agreement()}


@router.get("/products/{product_id}/intents")
def product_intents(product_id: Name, sw: AppDep, _: Reader,
                    k: Annotated[int, Query(ge=1, le=200)] = 10) -> list[dict[str, Any]]:
    from ...graph import GraphStore

    with sw.db.session() as s:
        return [{"intent": i, "score": sc} for i, sc in GraphStore(s).intents_of_product(product_id, k)]


@router.get("/intents/products")
def intent_products(sw: AppDep, _: Reader, intent: Name,
                    k: Annotated[int, Query(ge=1, le=500)] = 50) -> list[dict[str, Any]]:
    from ...graph import GraphStore

    with sw.db.session() as s:
        return [{"product_id": p, "score": sc} for p, sc in GraphStore(s).products_of_intent(intent, k)]


@router.get("/navigate")
def navigate(sw: AppDep, _: Reader, q: Annotated[Text, Query(min_length=1, max_length=500)]) -> dict[str, Any]:
    """Hierarchical navigation: query → intents → product types → refinements."""
    from ...graph import navigation_tree

    return navigation_tree(sw.db, sw.embedder, q).model_dump(mode="json")


@router.post("/recommend")
def recommend(body: Session, sw: AppDep, _: Reader, k: Annotated[int, Query(ge=1, le=100)] = 5) -> dict[str, Any]:
    """Products that serve the intents inferred from a session."""
    from ...graph import recommend as recommend_products
    from ...graph.navigate import SessionInput

    source = sw.providers.intents
    if source is None:
        from ...graph import register

        source = register(sw)
    return recommend_products(sw.db, source, SessionInput(**body.model_dump()), k)
