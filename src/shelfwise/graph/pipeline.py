"""``build``: behaviour pairs → sampling → generation → refinement cascade → edges, resumable end to end.

Re-running after an interruption skips finished pairs (job table) and already-refined candidates (their
stage is no longer ``new``), so nothing is generated or stored twice."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from ..errors import InputError
from .annotate import resolved_labels
from .behaviour import BehaviourPair, ProductInfo, catalog_products, check_known_products
from .cascade import CascadeConfig, CascadeContext, StageReport, run_cascade
from .classifier import load_classifier
from .generate import GenerationReport, generate_candidates
from .models import GraphCandidate
from .relations import mine_relation_proposals, relations
from .sampling import SamplingConfig, sample_pairs
from .store import GraphStore

__all__ = ["BuildConfig", "BuildReport", "build_graph", "refine", "rescore_edges"]


class BuildConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    sampling: SamplingConfig = Field(default_factory=SamplingConfig)
    cascade: CascadeConfig = Field(default_factory=CascadeConfig)
    candidates_per_pair: int = Field(5, ge=1, le=8)
    job: str = Field("graph.build", min_length=1)
    role: str = "graph.generator"
    use_classifier: bool = True
    # Generation is the expensive step: with workers > 1 (or executor "ray") it runs over shards of pairs,
    # each shard on its own process; the cascade then runs once over everything.
    workers: int = Field(1, ge=1, le=1024)
    executor: str = Field("local", pattern="^(local|ray)$")
    ray_address: str | None = None


class BuildReport(BaseModel):
    pairs_in: int
    unknown_product_pairs: int
    sampling_dropped: dict[str, int]
    pairs_sampled: int
    generation: dict[str, Any]
    cascade: list[StageReport]
    edges_added: int
    relation_proposals: list[str]


def refine(sw: Any, products: dict[str, ProductInfo], pair_keys: list[str] | None = None,
           config: CascadeConfig | None = None, *, use_classifier: bool = True, source: str = ""
           ) -> tuple[list[StageReport], int]:
    """Run the cascade over every ``new`` candidate (optionally only of ``pair_keys``) and store edges."""
    classifier = load_classifier(sw, required=False) if use_classifier else None
    with sw.db.session() as s:
        store = GraphStore(s)
        cands = store.candidates(stage="new", pair_keys=pair_keys)
        ctx = CascadeContext(products=products, embedder=sw.embedder, classifier=classifier,
                             annotations=resolved_labels(s), tail_products=store.tail_products())
        kept, reports = run_cascade(cands, ctx, config)
        store.save_outcome(cands)
        added = store.add_edges(kept, source=source)
    return reports, added


def build_graph(sw: Any, pairs: list[BehaviourPair], products: dict[str, ProductInfo],
                config: BuildConfig | None = None, *, on_pair: Callable[[BehaviourPair], None] | None = None,
                source: str = "") -> BuildReport:
    cfg = config or BuildConfig()
    if not pairs:
        raise InputError("no behaviour pairs to build from",
                         fix="log purchase events with a query, or pass --source FILE (a pairs JSONL) / --source intentionqa")
    usable, unknown = check_known_products(pairs, products)
    sampled = sample_pairs(usable, products, cfg.sampling)
    with sw.db.session() as s:
        rels = relations(s)
    if cfg.workers > 1 or cfg.executor != "local":
        gen = _generate_sharded(sw, sampled.kept, products, rels, cfg)
    else:
        gen = generate_candidates(sw.db, sw.llm(cfg.role), sampled.kept, products, rels, job=cfg.job,
                                  k=cfg.candidates_per_pair, on_pair=on_pair)
    keys = [p.key for p in sampled.kept]
    reports, added = refine(sw, products, keys, cfg.cascade, use_classifier=cfg.use_classifier, source=source)
    with sw.db.session() as s:
        rows = s.execute(select(GraphCandidate.pair_key, GraphCandidate.relation, GraphCandidate.tail)
                         .where(GraphCandidate.pair_key.in_(keys))).all()
        proposals = [r.name for r in mine_relation_proposals(s, [tuple(r) for r in rows])]
    return BuildReport(
        pairs_in=len(pairs), unknown_product_pairs=len(unknown), sampling_dropped=sampled.dropped,
        pairs_sampled=len(sampled.kept),
        generation={"pairs_done": gen.pairs_done, "pairs_skipped": gen.pairs_skipped,
                    "pairs_failed": gen.pairs_failed, "candidates": gen.candidates, "empty": gen.empty,
                    "seconds": round(gen.seconds, 1), "pairs_per_min": round(gen.pairs_per_min, 2),
                    "errors": gen.errors[:5]},
        cascade=reports, edges_added=added, relation_proposals=proposals)


def generate_shard(sw: Any, shard: tuple) -> GenerationReport:  # type: ignore[type-arg]
    """One shard of a scaled-out generation, run wherever the executor put it (same code as one process)."""
    pairs, products, rels, job, k, role = shard
    return generate_candidates(sw.db, sw.llm(role), pairs, products, rels, job=job, k=k)


def _generate_sharded(sw: Any, pairs: list[BehaviourPair], products: dict[str, ProductInfo],
                      rels: dict[str, str], cfg: BuildConfig) -> GenerationReport:
    from ..scale import run_sharded, split

    started = time.perf_counter()
    shards = []
    for part in split(pairs, cfg.workers):
        needed = {pid for p in part for pid in p.product_ids}
        shards.append((part, {pid: products[pid] for pid in needed if pid in products}, rels, cfg.job,
                       cfg.candidates_per_pair, cfg.role))
    reports = run_sharded(generate_shard, shards, sw=sw if cfg.executor == "local" else None,
                          settings=sw.settings, executor=cfg.executor, workers=cfg.workers,
                          ray_address=cfg.ray_address)
    merged = GenerationReport(seconds=time.perf_counter() - started)  # wall time: shards ran side by side
    for r in reports:
        merged.pairs_done += r.pairs_done
        merged.pairs_skipped += r.pairs_skipped
        merged.pairs_failed += r.pairs_failed
        merged.candidates += r.candidates
        merged.empty += r.empty
        merged.errors += r.errors
    return merged


def rescore_edges(sw: Any, classifier: Any) -> int:
    """Store a (newly trained) classifier's calibrated scores on every edge; human-labelled edges keep
    their labels. Returns how many edges were scored."""
    from .cascade import CandView
    from .models import GraphEdge, GraphEdgeProduct, GraphIntent

    with sw.db.session() as s:
        rows = s.execute(select(GraphEdge, GraphIntent.text).join(GraphIntent, GraphIntent.id == GraphEdge.intent_id)).all()
        pids = {e.id: [] for e, _ in rows}
        for eid, pid in s.execute(select(GraphEdgeProduct.edge_id, GraphEdgeProduct.product_id)):
            pids.setdefault(eid, []).append(pid)
        todo = [(e, CandView(id=e.id, pair_key=e.head, kind=e.kind, query=e.query, product_ids=pids[e.id],
                             relation=e.relation, tail=text)) for e, text in rows
                if not e.provenance.get("human")]
        if not todo:
            return 0
        products = catalog_products(s, {p for _, c in todo for p in c.product_ids})
        for (edge, _), (plaus, typ) in zip(todo, classifier.score([c for _, c in todo], products), strict=True):
            edge.plausibility, edge.typicality = round(plaus, 4), round(typ, 4)
    return len(todo)
