"""Serving: a feature store over the graph and a two-tier query cache behind ``IntentSource``.

    tier 1  precomputed for frequent queries, held in memory: a hit is a dict lookup
    tier 2  filled by a batch job (``fill_misses``) for queries that missed; read from memory/DB
    miss    returns [] at once and is queued for the batch job — a request never waits on a model or scan
"""

from __future__ import annotations

import threading
from collections import Counter, defaultdict
from typing import Any

import numpy as np
from sqlalchemy import func, select

from ..contracts import IntentHit, IntentSource
from ..store.db import Database
from ..store.models import EventRow
from .behaviour import catalog_products
from .models import GraphCacheEntry, GraphEdge, GraphEdgeProduct, GraphIntent
from .store import GraphStore

__all__ = ["FeatureStore", "GraphIntentSource", "IntentCache", "compute_expansion", "frequent_queries", "register"]


def _norm(query: str) -> str:
    return " ".join(query.lower().split())[:400]


def compute_expansion(db: Database, embedder: Any, query: str, k: int = 10, min_similarity: float = 0.45
                      ) -> list[IntentHit]:
    """Intents behind a query: edges generated for this very query, then intents whose text is close to
    it (embedding cosine or word containment). Scans the graph — batch/precompute only, never per request."""
    q = _norm(query)
    with db.session() as s:
        rows = s.execute(select(GraphIntent.id, GraphIntent.text)).all()
        if not rows:
            return []
        texts = [t for _, t in rows]
        text_of = dict(rows)
        score: dict[int, float] = defaultdict(float)
        for iid, support in s.execute(select(GraphEdge.intent_id, GraphEdge.support).where(GraphEdge.query == q)):
            score[iid] += 1.0 + 0.1 * support
        sims = np.asarray(embedder.embed(texts)) @ np.asarray(embedder.embed([q]))[0] if embedder else None
        qwords = set(q.split())
        for idx, (iid, text) in enumerate(rows):
            sim = float(sims[idx]) if sims is not None else 0.0
            lexical = 0.3 if qwords and qwords <= set(text.split()) else 0.0
            if sim >= min_similarity or lexical:
                score[iid] += max(sim, 0.0) + lexical
        best = sorted(score.items(), key=lambda kv: -kv[1])[:k]
        hits = []
        for iid, sc in best:
            edges = s.execute(select(GraphEdge.id, GraphEdge.relation).where(GraphEdge.intent_id == iid)).all()
            pids = Counter(s.scalars(select(GraphEdgeProduct.product_id)
                                     .where(GraphEdgeProduct.edge_id.in_([e.id for e in edges]))))
            types = Counter(p.product_type for p in catalog_products(s, pids).values())
            rel = Counter(e.relation for e in edges).most_common(1)
            hits.append(IntentHit(intent=text_of[iid], relation=rel[0][0] if rel else "",
                                  score=round(sc, 4), product_ids=tuple(p for p, _ in pids.most_common(20)),
                                  product_types=tuple(t for t, _ in types.most_common(5)),
                                  edge_ids=tuple(e.id for e in edges[:20])))
        return hits


def frequent_queries(db: Database, top: int = 1000) -> list[str]:
    """The most frequent queries in the event log (impressions and purchases)."""
    with db.session() as s:
        rows = s.execute(select(EventRow.payload).where(EventRow.type.in_(["search_impression", "purchase"]))).all()
    counts = Counter(_norm(p["query"]) for (p,) in rows if isinstance(p, dict) and p.get("query"))
    return [q for q, _ in counts.most_common(top)]


class IntentCache:
    def __init__(self, db: Database, embedder: Any) -> None:
        self.db, self.embedder = db, embedder
        self.tier1: dict[str, list[IntentHit]] = {}
        self.tier2: dict[str, list[IntentHit]] = {}
        self._misses: Counter[str] = Counter()
        self._lock = threading.Lock()

    def load(self) -> IntentCache:
        with self.db.session() as s:
            for row in s.scalars(select(GraphCacheEntry).where(GraphCacheEntry.status == "ready")):
                hits = [IntentHit.model_validate(h) for h in row.hits]
                (self.tier1 if row.tier == 1 else self.tier2)[row.query] = hits
        return self

    def get(self, query: str) -> tuple[list[IntentHit], str]:
        """(hits, "tier1" | "tier2" | "miss"). Never computes: a miss is queued for ``fill_misses``."""
        q = _norm(query)
        hit = self.tier1.get(q)
        if hit is not None:
            return hit, "tier1"
        hit = self.tier2.get(q)
        if hit is not None:
            return hit, "tier2"
        with self._lock:
            self._misses[q] += 1
        return [], "miss"

    def _store(self, query: str, hits: list[IntentHit], tier: int) -> None:
        with self.db.session() as s:
            row = s.get(GraphCacheEntry, query) or GraphCacheEntry(query=query, misses=0)
            row.tier, row.status, row.hits = tier, "ready", [h.model_dump(mode="json") for h in hits]
            s.merge(row)
        (self.tier1 if tier == 1 else self.tier2)[query] = hits

    def warm(self, queries: list[str], k: int = 10) -> int:
        """Precompute tier 1 for frequent queries."""
        for q in dict.fromkeys(_norm(q) for q in queries):
            self._store(q, compute_expansion(self.db, self.embedder, q, k), tier=1)
        return len(self.tier1)

    def flush_misses(self) -> int:
        with self._lock:
            misses, self._misses = self._misses, Counter()
        with self.db.session() as s:
            for q, n in misses.items():
                row = s.get(GraphCacheEntry, q)
                if row is None:
                    s.add(GraphCacheEntry(query=q, tier=2, status="pending", hits=[], misses=n))
                else:
                    row.misses += n
        return len(misses)

    def fill_misses(self, limit: int | None = None, k: int = 10) -> int:
        """The tier-2 batch job: compute every pending miss (most-missed first) and cache it."""
        self.flush_misses()
        with self.db.session() as s:
            stmt = (select(GraphCacheEntry.query).where(GraphCacheEntry.status == "pending")
                    .order_by(GraphCacheEntry.misses.desc()))
            pending = list(s.scalars(stmt.limit(limit) if limit else stmt))
        for q in pending:
            self._store(q, compute_expansion(self.db, self.embedder, q, k), tier=2)
        return len(pending)

    def stats(self) -> dict[str, int]:
        with self.db.session() as s:
            pending = s.scalar(select(func.count()).where(GraphCacheEntry.status == "pending")) or 0
        return {"tier1": len(self.tier1), "tier2": len(self.tier2), "pending": int(pending) + len(self._misses)}


class FeatureStore:
    """Graph knowledge as features: intent tags per product; intent ↔ product-type scores per query."""

    def __init__(self, db: Database, cache: IntentCache) -> None:
        self.db, self.cache = db, cache
        self._tags: dict[tuple[str, int], list[tuple[str, float]]] = {}

    def product_intents(self, product_id: str, k: int = 10) -> list[tuple[str, float]]:
        key = (product_id, k)
        if key not in self._tags:
            with self.db.session() as s:
                self._tags[key] = GraphStore(s).intents_of_product(product_id, k)
        return self._tags[key]

    def query_type_scores(self, query: str) -> dict[str, float]:
        scores: Counter[str] = Counter()
        for hit in self.cache.get(query)[0]:
            for rank, t in enumerate(hit.product_types):
                scores[t] += hit.score / (1 + rank)
        return dict(scores)

    def ranking_features(self, query: str, product_id: str, product_type: str = "") -> dict[str, float]:
        hits = self.cache.get(query)[0]
        return {"intent_match": float(sum(h.score for h in hits if product_id in h.product_ids)),
                "intent_type_score": float(self.query_type_scores(query).get(product_type, 0.0)),
                "intent_tags": float(len(self.product_intents(product_id)))}


class GraphIntentSource(IntentSource):
    """``IntentSource`` for search (expansion, ranking features) and enrich (supervisor context)."""

    def __init__(self, db: Database, embedder: Any) -> None:
        self.cache = IntentCache(db, embedder).load()
        self.features = FeatureStore(db, self.cache)

    def expand(self, query: str, k: int = 10) -> list[IntentHit]:
        return self.cache.get(query)[0][:k]

    def product_intents(self, product_id: str, k: int = 10) -> list[tuple[str, float]]:
        return self.features.product_intents(product_id, k)


def register(sw: Any) -> GraphIntentSource:
    """Attach the graph as ``sw.providers.intents`` (tier-1 and tier-2 caches loaded from the DB)."""
    source = GraphIntentSource(sw.db, sw.embedder)
    sw.providers.intents = source
    return source
