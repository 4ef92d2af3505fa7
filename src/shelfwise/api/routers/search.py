"""Search: query with explanations, shopper feedback, index maintenance and learning from the log.

One ``SearchService`` per app holds the loaded index, bandit and ranker; a lock serialises requests on it
because feedback and index updates mutate what a search reads (scale out with more worker processes)."""

from __future__ import annotations

import threading
from dataclasses import asdict
from datetime import timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from ...config import MAX_RERANK_DEPTH
from ..deps import AppDep, Expert, Reader, Writer
from ..text import Name, Text

router = APIRouter(prefix="/search", tags=["search"])
_LOCK = threading.Lock()


class _Guarded:
    def __init__(self, service: Any) -> None:
        self.service = service
        self.lock = threading.RLock()


def get_search(request: Request, sw: AppDep) -> _Guarded:
    with _LOCK:
        if getattr(request.app.state, "search", None) is None:
            from ...search import SearchService

            request.app.state.search = _Guarded(SearchService(sw))
        return request.app.state.search


SearchDep = Annotated[_Guarded, Depends(get_search)]


# Generous, but finite: ``timedelta`` overflows near 1e15 minutes, and a decade covers any feedback window.
MAX_WINDOW_MINUTES = 60 * 24 * 366 * 10
MAX_QUANTITY = 10_000  # = search.feedback.MAX_QUANTITY (not imported here: the search package loads lazily)


class Feedback(BaseModel):
    # add-to-cart is the CLI's and the docs' spelling; the service reads both
    kind: Literal["click", "add_to_cart", "add-to-cart", "purchase"]
    product_id: Text = Field(min_length=1, max_length=200)
    decision_id: Text = Field(min_length=1, max_length=200, description="the decision id the search returned")
    position: int | None = Field(None, ge=0, le=10_000, description="0-based position on the page (checked)")
    quantity: int = Field(1, ge=1, le=MAX_QUANTITY, description="units bought (purchase only)")


@router.get("")
def search(search: SearchDep, _: Reader, q: Annotated[str, Query(description="what the shopper typed")],
           k: Annotated[int, Query(ge=1, le=200)] = 10, explain: bool = False,
           segment: Annotated[Text | None, Query(max_length=64, description="user segment, a bandit context "
                                                 "feature (e.g. app, web)")] = None,
           rerank: Annotated[int | None, Query(ge=0, le=MAX_RERANK_DEPTH, description="re-score this many top results with "
                                               "the cross-encoder (~10 ms each); default: the server's setting")
                             ] = None) -> dict[str, Any]:
    """Run the pipeline (bandit → strategies → ranker → optional cross-encoder). The decision is logged with
    its propensity."""
    from ...search import SearchContext

    with search.lock:
        result = search.service.search(q, k, context=SearchContext(user_segment=segment), explain=explain,
                                       rerank=rerank)
    return asdict(result)


@router.post("/feedback")
def feedback(body: Feedback, search: SearchDep, _: Writer) -> dict[str, int]:
    """A click, add-to-cart or purchase on a logged result; unknown decisions are rejected (422)."""
    with search.lock:
        event_id = search.service.feedback(body.kind, body.product_id, body.decision_id, position=body.position,
                                           quantity=body.quantity)
    return {"event_id": event_id}


@router.post("/index")
def index(search: SearchDep, _: Writer, rebuild: bool = False) -> dict[str, Any]:
    """Bring the index up to date with the catalog (changed products only), or rebuild it."""
    with search.lock:
        svc = search.service
        if rebuild or not (svc.directory / "manifest.json").exists():
            return svc.build_index()
        return svc.sync()


@router.post("/index/{product_id}")
def upsert(product_id: Name, search: SearchDep, _: Writer) -> dict[str, str]:
    """Re-index one product now, or drop it if it was deleted ("status": "indexed" | "removed"); visible to
    the next search. 404 for an id that is neither in the catalog nor in the index."""
    with search.lock:
        status = search.service.upsert(product_id)
    return {"product_id": product_id, "status": status}


@router.post("/learn")
def learn(search: SearchDep, _: Expert,
          window_minutes: Annotated[float, Query(ge=0, le=MAX_WINDOW_MINUTES, allow_inf_nan=False,
                                                 description="feedback window before a decision is learned")
                                    ] = 30.0) -> dict[str, Any]:
    """Replay the event log into the memory index, the bandit and the click-trained ranker."""
    with search.lock:
        return search.service.learn(feedback_window=timedelta(minutes=window_minutes))
