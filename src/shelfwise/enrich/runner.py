"""The enrichment loop: workers → per-attribute agreement → supervisor on disagreement → learnings → the
next product reads them. ``EnrichmentLoop(sw).run_batch(product_ids)`` is resumable and idempotent: each
product commits its values, events, learnings and its job mark in one transaction (``JobTracker``)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..errors import InputError, LLMError, ShelfwiseError
from ..store.catalog import Catalog, Listing
from ..store.jobs import JobTracker
from ..store.models import CategorySchema, Product, utcnow
from .models import EnrichBatch
from .product import KnowledgeCache, Plan, ProductResult, plan_product
from .stats import BatchReport, aggregate, write_stats

__all__ = ["BatchReport", "EnrichmentLoop", "LoopConfig", "ProductResult", "listing_of"]

log = logging.getLogger("shelfwise.enrich")


class LoopConfig(BaseModel):
    """How the loop behaves; frozen and self-validating."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    llm_worker: bool = True
    compiled_worker: bool = True
    evaluator: bool = True
    learn: bool = True  # False freezes the knowledge base (read, never write)
    titles: bool = False
    vote_threshold: float = Field(1.0, gt=0.0, le=1.0)
    review_below: float = Field(0.5, ge=0.0, le=1.0, description="supervisor confidence below this → review")
    supervisor_steps: int = Field(2, ge=1, le=6)
    max_learnings: int = Field(12, ge=0)
    max_learning_tokens: int = Field(400, ge=0)
    max_listing_tokens: int = Field(600, ge=64)
    space: str = "production"


def listing_of(product: Product) -> Listing:
    return Listing(id=product.id, title=product.title, description=product.description or "",
                   bullets=list(product.bullets or []), category_path=product.category_path or "",
                   brand=product.brand, seller_id=product.seller_id)


class EnrichmentLoop:
    """Library API. Collaborators are built from ``sw`` unless given (tests inject doubles by name)."""

    def __init__(self, sw: Any, config: LoopConfig | None = None, *,
                 kb_factory: Callable[[Session], Any] | None = None) -> None:
        from .supervisor import Supervisor
        from .tools import NeighbourIndex
        from .workers import LLMEvaluator, LLMGenerator

        self.sw = sw
        self.config = config = config or LoopConfig()
        self.kb_factory = kb_factory or self._real_kb
        self.generator = LLMGenerator(sw.llm("worker.generator"), max_listing_tokens=config.max_listing_tokens) \
            if config.llm_worker else None
        self.evaluator = LLMEvaluator(sw.llm("worker.evaluator") if config.evaluator else None,
                                      max_listing_tokens=config.max_listing_tokens)
        self.supervisor = Supervisor(sw.llm("supervisor"), max_steps=config.supervisor_steps)
        self.neighbours = NeighbourIndex(self._embedder())
        self.knowledge = KnowledgeCache()
        self._ensure_schemas()

    def _embedder(self) -> Any:
        try:
            return self.sw.embedder
        except (ShelfwiseError, ImportError, OSError) as exc:  # an unavailable embedder degrades the "similar" tool, never the loop
            log.warning("no embedder for similar-product look-ups: %s", exc)
            return None

    def _real_kb(self, session: Session) -> Any:
        from .kb import KnowledgeBase

        llm = self.sw.llm("memory.manager") if self.config.learn else None
        return KnowledgeBase(session, embedder=self.neighbours.embedder, llm=llm, space=self.config.space)

    def _ensure_schemas(self) -> None:
        from .schemas import builtin_schemas, install_schemas

        # Built-in schemas fill the gaps only: a schema someone loaded for the same path is never overwritten.
        with self.sw.db.session() as s:
            have = set(s.scalars(select(CategorySchema.category_path)))
            install_schemas(s, [x for x in builtin_schemas() if x.category_path not in have])

    # -- batches ------------------------------------------------------------------------------------
    def open_batch(self, product_ids: Sequence[str], batch_id: str | None = None) -> EnrichBatch:
        with self.sw.db.session() as s:
            if batch_id is not None and (row := s.get(EnrichBatch, batch_id)) is not None:
                return row
            seq = (s.scalar(select(func.max(EnrichBatch.seq))) or 0) + 1
            row = EnrichBatch(id=batch_id or f"b{seq:04d}-{uuid.uuid4().hex[:6]}", seq=seq,
                              product_ids=list(dict.fromkeys(product_ids)), status="running", summary={})
            s.add(row)
            return row

    def running_batch(self) -> EnrichBatch | None:
        with self.sw.db.session() as s:
            return s.scalar(select(EnrichBatch).where(EnrichBatch.status == "running").order_by(EnrichBatch.seq))

    def run_batch(self, product_ids: Sequence[str], *, batch_id: str | None = None,
                  on_product: Callable[[ProductResult], None] | None = None) -> BatchReport:
        """Enrich these products as one batch. Re-running the same ``batch_id`` after a crash finishes the
        products not yet done and redoes none of the others."""
        if not product_ids:
            raise InputError("empty batch", fix="pass at least one product id (ingest listings first)")
        batch = self.open_batch(product_ids, batch_id)
        self.knowledge.clear()  # experts may have edited the knowledge base between batches
        tracker = JobTracker(self.sw.db, f"enrich:{batch.id}")
        for pid in tracker.pending(batch.product_ids):
            with self.sw.db.session() as s:  # phase 1: reads and model calls, no writes
                plan = self.plan(s, pid, batch.id)
            self.learn(plan)
            with self.sw.db.session() as s:  # phase 2: every write of this product, with its job mark
                result = plan.apply(s)
                tracker.mark(s, pid, "done", result=result.model_dump(mode="json"))
            if on_product:
                on_product(result)
        results = [ProductResult.model_validate(r) for r in tracker.results().values() if r]
        report = aggregate(batch.id, batch.seq, results)
        with self.sw.db.session() as s:
            row = s.get(EnrichBatch, batch.id)
            if row.status != "done":  # stats are written once, in the same transaction as the status
                write_stats(s, report, results)
                row.status, row.summary, row.finished_at = "done", report.model_dump(mode="json",
                                                                                   exclude={"per_attribute"}), utcnow()
        return report

    def learn(self, plan: Plan) -> None:
        """Place the plan's learnings, each in its own short transaction (the memory manager may call its model,
        and no write lock may be held meanwhile). A crash after this and before the product's commit re-runs
        the product, and the knowledge base merges the identical drafts instead of duplicating them."""
        if not self.config.learn:
            return
        for attribute, draft in plan.drafts:
            try:
                with self.sw.db.session() as s:
                    placed = self.kb_factory(s).add(draft, status="active", actor="supervisor")
            except ShelfwiseError as exc:  # a learning that cannot be placed must not stop enrichment
                log.warning("learning for %s/%s not placed: %s", plan.result.product_id, attribute, exc)
                continue
            self.knowledge.clear(plan.result.category_path)
            if placed.learning_id is not None:
                plan.result.learnings.append([placed.learning_id, attribute, placed.action])

    def plan(self, session: Session, product_id: str, batch_id: str | None = None) -> Plan:
        catalog = Catalog(session)
        product = catalog.get(product_id)
        listing = listing_of(product)
        schema = catalog.schema_for(listing.category_path)
        if schema is None:
            raise InputError(f"no attribute schema for category {listing.category_path!r}",
                             fix="load one with `shelfwise enrich --schemas FILE` or install the built-in ones")
        return plan_product(self, session, listing, schema, batch_id)

    def llm_error_types(self) -> tuple[type[BaseException], ...]:
        return (LLMError,)
