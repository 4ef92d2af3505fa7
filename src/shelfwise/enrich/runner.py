"""The enrichment loop: workers → per-attribute agreement → supervisor on disagreement → learnings → the
next product reads them. ``EnrichmentLoop(sw).run_batch(product_ids)`` is resumable and idempotent: each
product's values, events and learnings commit in the transaction that marks it done (``JobTracker``); fast
products share one transaction (``LoopConfig.commit_every`` / ``commit_after_s``)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from ..errors import InputError, LLMError, NotFoundError, ShelfwiseError
from ..store.catalog import Catalog, Listing
from ..store.jobs import JobTracker
from ..store.models import CategorySchema, JobItem, Product, utcnow
from .escalation import EscalationPolicy, FillRates
from .models import EnrichBatch, EnrichBatchStat
from .product import KnowledgeCache, Plan, ProductResult, apply_plans, plan_product
from .stats import BatchReport, aggregate, write_stats
from .trust import EVALUATOR, SUPERVISOR, TrackRecord, TrustConfig

__all__ = ["BatchReport", "EnrichmentLoop", "LoopConfig", "ProductResult", "listing_of"]

log = logging.getLogger("shelfwise.enrich")


class LoopConfig(BaseModel):
    """How the loop behaves; frozen and self-validating."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # The generator panel: one LLM worker per role, each a different model where available (their clashes are
    # the disagreements the supervisor learns from). On a tie the compiled worker's spelling wins, then the
    # panel's in this order. An empty panel leaves the compiled worker alone.
    generator_roles: tuple[str, ...] = ("worker.generator", "worker.generator.alt")
    compiled_worker: bool = True
    # Drop a generator's value before the vote when the knowledge base says it cannot be that attribute: an
    # expert rejected it, it is confirmed for another attribute, or it breaks the attribute's confirmed shape
    # (screening.py). Off: every value the generators give is voted on.
    screen: bool = True
    evaluator: bool = True
    learn: bool = True  # False freezes the knowledge base (read, never write)
    titles: bool = False
    # Share of the workers that must give the same value for it to be stored unchecked. All of them by default:
    # the panel's two models are one family and can share a misreading, which only the evaluator catches.
    vote_threshold: float = Field(1.0, gt=0.0, le=1.0)
    review_below: float = Field(0.5, ge=0.0, le=1.0, description="supervisor confidence below this → review")
    supervisor_steps: int = Field(2, ge=1, le=6)
    max_learnings: int = Field(12, ge=0)
    max_learning_tokens: int = Field(400, ge=0)
    max_listing_tokens: int = Field(600, ge=64)
    space: str = "production"
    # Group commit: products are written together until this many are pending or their model time reaches
    # ``commit_after_s``. With real models (seconds per product) every product commits alone; with fast or
    # cached models the per-transaction cost is shared. An exception commits the finished ones first.
    commit_every: int = Field(64, ge=1)
    # Escalation (escalation.py): disagreements always reach the supervisor; beyond them, up to this share of
    # products goes to it where the workers are least sure. 0 = disagreements only.
    supervisor_budget: float = Field(0.35, ge=0.0, le=1.0)
    # Until this many products have been scored there is nothing to rank against, and a product goes to the
    # supervisor only if its uncertainty reaches the absolute bar below (see escalation.py).
    escalation_warmup: int = Field(4, ge=0)
    escalation_cold_threshold: float = Field(3.0, ge=0.0)
    max_extra_attributes: int = Field(6, ge=0, le=11)
    # Worked examples (whole settled listings) shown to the generator and to the supervisor; 0 = none. The
    # supervisor gets none by default: in the OA-Mine train rounds the 1.5B model copied the examples' values
    # (Brand "Folgers" for a Victor Allen listing): rounds 1-4 15/15 rulings grounded in the listing, rounds
    # 5-6 3 of 26 non-null ones (docs/benchmarks.md).
    generator_examples: int = Field(3, ge=0, le=8)
    supervisor_examples: int = Field(0, ge=0, le=8)
    commit_after_s: float = Field(1.0, ge=0.0)
    # Whom to trust in a dispute, learned from resolved review items (trust.py).
    trust: TrustConfig = TrustConfig()
    # Share of confident supervisor rulings on disputes that go to the review queue anyway, as a spot check
    # (their values wait for the answer). The answers are what the track record learns from; 0 = none. Meant for
    # learn-then-deploy staging, where experts audit; ignored when ``learn`` is False.
    audit_rulings: float = Field(0.0, ge=0.0, le=1.0)
    # Share of disputes the track record settled without the supervisor that also go to the review queue, as
    # spot checks (the trusted value is stored at once; an answer supersedes it). Without them a record that
    # settles most clashes stops hearing from people, its estimates freeze and the rulings it still sends
    # dry up (docs/benchmarks.md, tenth session). The answers score the workers (not the supervisor, which
    # was not asked) and become learnings like any review answer. 0 = none; ignored when ``learn`` is False.
    audit_settled: float = Field(0.0, ge=0.0, le=1.0)

    @field_validator("generator_roles")
    @classmethod
    def _distinct_roles(cls, roles: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(roles)) != len(roles):
            raise ValueError(f"generator_roles repeats a role: {roles}; list each role once")
        return roles


def source_models(sw: Any, config: LoopConfig) -> dict[str, str]:
    """The model behind each source the track record scores (generators by name, the evaluator, the
    supervisor): stored with every review item, so answers about a replaced model are not credited to its
    successor. Reading a role's model loads nothing."""
    out = {role.removeprefix("worker."): sw.llm(role).model for role in config.generator_roles}
    if config.evaluator:
        out[EVALUATOR] = sw.llm("worker.evaluator").model
    out[SUPERVISOR] = sw.llm("supervisor").model
    return out


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
        self.generators = [LLMGenerator(sw.llm(role), name=role.removeprefix("worker."),
                                        max_listing_tokens=config.max_listing_tokens,
                                        worked_examples=config.generator_examples)
                           for role in config.generator_roles]
        self.evaluator = LLMEvaluator(sw.llm("worker.evaluator") if config.evaluator else None,
                                      max_listing_tokens=config.max_listing_tokens)
        self.supervisor = Supervisor(sw.llm("supervisor"), max_steps=config.supervisor_steps,
                                     learnings=config.learn)
        self.neighbours = NeighbourIndex(self._embedder())
        self.knowledge = KnowledgeCache()
        self.track = TrackRecord(config.trust)
        self.escalation = self._new_policy()
        self.fill_rates = FillRates()  # learned per batch (run_batch); until then the schema order's guess
        self._schemas: dict[str, Any] = {}
        self._listings: dict[str, Listing] = {}
        self._versions: dict[str, int] = {}  # the listing version each prefetched product was read at
        self._finished: dict[str, ProductResult] = {}
        self._source_models = source_models(sw, config)  # the roles keep their models for the loop's lifetime
        self._ensure_schemas()

    def source_models(self) -> dict[str, str]:
        return self._source_models

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
        """A new batch of these products (or the stored batch ``batch_id``). Unknown or deleted ids are refused
        before anything is opened: a batch naming them could never finish."""
        with self.sw.db.session() as s:
            if batch_id is not None and (row := s.get(EnrichBatch, batch_id)) is not None:
                return row
            wanted = list(dict.fromkeys(product_ids))
            known: set[str] = set()
            for i in range(0, len(wanted), 500):
                known.update(s.scalars(select(Product.id).where(Product.id.in_(wanted[i: i + 500]),
                                                               Product.deleted.is_(False))))
            if missing := [pid for pid in wanted if pid not in known]:
                raise InputError(f"{len(missing)} of the batch's products are not in the catalog: "
                                 f"{', '.join(map(repr, missing[:5]))}{' …' if len(missing) > 5 else ''}",
                                 fix="ingest them first (`shelfwise ingest FILE`) or leave them out")
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
        with self.sw.db.session() as s:  # ... and answered review items, which the track record learns from
            self.track = TrackRecord.from_reviews(s, self.config.trust, models=self.source_models())
        self._schemas.clear()
        tracker = JobTracker(self.sw.db, f"enrich:{batch.id}")
        failed = tracker.failed_items()  # quarantined by an earlier run: not retried on resume (``retry``)
        pending = [pid for pid in tracker.pending(batch.product_ids) if pid not in failed]
        self._finished = {}
        self.escalation = self._policy(tracker, len(pending) < len(batch.product_ids))
        self._listings = self._prefetch(pending)
        with self.sw.db.session() as s:
            self.fill_rates = FillRates.from_store(s, {x.category_path for x in self._listings.values()},
                                                   exclude_job=tracker.job)
        group: list[Plan] = []
        group_seconds = 0.0
        try:
            for pid in pending:
                try:
                    with self.sw.db.session() as s:  # phase 1: reads and model calls, no writes
                        plan = self.plan(s, pid, batch.id)
                        plan.result.listing_version = self._versions.get(pid)
                except (InputError, NotFoundError, ValidationError) as exc:  # not a transient lock
                    # Bad data in one product (a listing or schema the loop cannot use) must not stop the
                    # batch, nor every later run that resumes it: the product is set aside with its error.
                    failed[pid] = self._quarantine(tracker, pid, exc)
                    continue
                self.learn(plan)
                group.append(plan)
                group_seconds += plan.result.seconds
                if len(group) >= self.config.commit_every or group_seconds >= self.config.commit_after_s:
                    self._commit(tracker, group, on_product)
                    group, group_seconds = [], 0.0
        finally:  # a crash (exception) keeps every product finished before it; only the one in flight is lost
            self._listings, self._versions = {}, {}
            if group:
                self._commit(tracker, group, on_product)
        # Products finished by an earlier (crashed) run are read back; this run's are in memory already.
        earlier = [r for pid, r in tracker.results().items() if pid not in self._finished and r] \
            if len(pending) < len(batch.product_ids) else []
        results = [*self._finished.values(), *(ProductResult.model_validate(r) for r in earlier)]
        self._finished = {}
        report = aggregate(batch.id, batch.seq, results).model_copy(update={"failed": failed})
        with self.sw.db.session() as s:
            row = s.get(EnrichBatch, batch.id)
            if row.status != "done":  # stats are written once, in the same transaction as the status
                write_stats(s, report, results)
                row.status, row.summary, row.finished_at = "done", report.model_dump(mode="json",
                                                                                   exclude={"per_attribute"}), utcnow()
        return report

    def _quarantine(self, tracker: JobTracker, product_id: str, exc: Exception) -> str:
        error = f"{type(exc).__name__}: {exc}"[:1000]
        log.warning("product %s set aside (failed, not retried on resume): %s", product_id, error)
        with self.sw.db.session() as s:
            tracker.mark(s, product_id, "failed", error=error)
        return error

    def retry_failed(self, batch_id: str, product_ids: Sequence[str] | None = None) -> int:
        """Make a batch's failed products pending again (after fixing their listing or schema) and reopen the
        batch, so the next ``run_batch(batch_id=...)`` or ``shelfwise enrich`` runs them. Returns how many."""
        with self.sw.db.session() as s:
            row = s.get(EnrichBatch, batch_id)
            if row is None:
                raise NotFoundError("enrich batch", batch_id, fix="list batches with `shelfwise report`")
            n = JobTracker(self.sw.db, f"enrich:{batch_id}").retry(s, product_ids)
            if n:
                row.status = "running"
                s.execute(delete(EnrichBatchStat).where(EnrichBatchStat.batch_id == batch_id))
        return n

    def _commit(self, tracker: JobTracker, group: list[Plan],
                on_product: Callable[[ProductResult], None] | None) -> None:
        """Phase 2: every write of these products, with their job marks, in one transaction."""
        with self.sw.db.session() as s:
            apply_plans(s, group, self.kb_factory(s))
            tracker.mark_many_done(s, {p.result.product_id: p.result.model_dump(mode="json") for p in group})
        for p in group:
            self._finished[p.result.product_id] = p.result
            if on_product:
                on_product(p.result)

    def _new_policy(self, history: list[float] | None = None) -> EscalationPolicy:
        return EscalationPolicy(self.config.supervisor_budget, history or (), warmup=self.config.escalation_warmup,
                                cold_threshold=self.config.escalation_cold_threshold)

    def _policy(self, tracker: JobTracker, resumed: bool) -> EscalationPolicy:
        """The escalation policy for a batch: uncertainty scores of the last products of other enrich jobs as
        history, then this batch's finished products (a resumed run) replayed in order."""
        with self.sw.db.session() as s:
            rows = s.scalars(select(JobItem.result).where(JobItem.job.like("enrich:%"), JobItem.job != tracker.job,
                                                          JobItem.status == "done")
                             .order_by(JobItem.id.desc()).limit(200)).all()
            mine = s.scalars(select(JobItem.result).where(JobItem.job == tracker.job, JobItem.status == "done")
                             .order_by(JobItem.id)).all() if resumed else []
        policy = self._new_policy([float((r or {}).get("uncertainty", 0.0)) for r in reversed(rows)])
        for r in mine:
            policy.observe(float((r or {}).get("uncertainty", 0.0)), bool((r or {}).get("supervisor_calls")))
        return policy

    def _prefetch(self, product_ids: Sequence[str]) -> dict[str, Listing]:
        """The batch's listings in a few queries instead of one per product."""
        out: dict[str, Listing] = {}
        with self.sw.db.session() as s:
            for i in range(0, len(product_ids), 500):
                for p in s.scalars(select(Product).where(Product.id.in_(list(product_ids[i: i + 500])),
                                                    Product.deleted.is_(False))):
                    out[p.id] = listing_of(p)
                    self._versions[p.id] = p.version
        return out

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
        listing = self._listings.get(product_id) or listing_of(catalog.get(product_id))
        if listing.category_path not in self._schemas:  # one look-up per category and batch
            self._schemas[listing.category_path] = catalog.schema_for(listing.category_path)
        schema = self._schemas[listing.category_path]
        if schema is None:
            raise InputError(f"no attribute schema for category {listing.category_path!r}",
                             fix="load one with `shelfwise enrich --schemas FILE` or install the built-in ones")
        return plan_product(self, session, listing, schema, batch_id)

    def llm_error_types(self) -> tuple[type[BaseException], ...]:
        return (LLMError,)
