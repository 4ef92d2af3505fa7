"""The request path: understand the query, let the bandit pick a strategy mix, retrieve, rank, optionally
re-score the top with a cross-encoder, explain.

Pure in-memory work (no database, no model call besides the query embedding and, when the second stage is
on, the cross-encoder), so the service, the CLI, the HTTP API and the benchmark all run exactly this code."""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..contracts import IntentSource
from ..errors import ConfigError, NotTrainedError
from .bandit import Arm, ContextualBandit, query_context
from .config import SearchConfig
from .index import Embedder, SearchIndex
from .memory import MemoryIndex
from .query import Query, SearchContext
from .rank import FEATURE_NAMES, LTRRanker, SecondStage, feature_matrix
from .retrievers import get_retriever
from .understanding import QueryUnderstanding

__all__ = ["Hit", "SearchResult", "Searcher", "rrf_scores"]


@dataclass
class Hit:
    product_id: str
    title: str
    score: float  # the first stage's (ranker or fusion); the order is the final one, after any second stage
    position: int
    found_by: dict[str, int] = field(default_factory=dict)  # strategy -> its rank of this product
    features: dict[str, float] = field(default_factory=dict)
    edges: list[int] = field(default_factory=list)
    rerank_score: float | None = None  # the cross-encoder's score when the second stage re-scored this hit


@dataclass
class SearchResult:
    query: str
    decision_id: str
    arm: str
    mix: dict[str, int]
    propensity: float
    context: dict[str, Any]
    ranker: str  # "ltr" or "rrf" (fusion, when no ranker is trained yet), "+ce" when the second stage ran
    hits: list[Hit]
    slots: list[dict[str, Any]] = field(default_factory=list)
    n_candidates: int = 0

    @property
    def product_ids(self) -> list[str]:
        return [h.product_id for h in self.hits]


def rrf_scores(rows: np.ndarray, found: dict[int, dict[str, int]], k0: float = 60.0) -> np.ndarray:
    """Reciprocal-rank fusion of the strategies' own rankings (the ranker's fallback and a baseline)."""
    return np.array([sum(1.0 / (k0 + r + 1) for r in found[int(row)].values()) for row in rows])


class Searcher:
    def __init__(self, index: SearchIndex, embedder: Embedder, *, config: SearchConfig | None = None,
                 memory: MemoryIndex | None = None, understanding: QueryUnderstanding | None = None,
                 intents: IntentSource | None = None, bandit: ContextualBandit | None = None,
                 ranker: LTRRanker | None = None, second_stage: SecondStage | None = None) -> None:
        self.index, self.embedder = index, embedder
        self.config = config or index.config
        self.memory, self.understanding, self.intents = memory, understanding, intents
        self.bandit = bandit or ContextualBandit(epsilon=self.config.bandit_epsilon)
        self.ranker, self.second_stage = ranker, second_stage
        self.retrievers = {name: get_retriever(name) for name in ("lexical", "structured", "dense", "memory", "intent")}

    def query(self, text: str, context: SearchContext | None = None) -> Query:
        return Query(text, self.index, embedder=self.embedder, memory=self.memory, understanding=self.understanding,
                     intents=self.intents, config=self.config, context=context)

    def candidates(self, q: Query, arm: Arm) -> tuple[np.ndarray, dict[int, dict[str, int]]]:
        found: dict[int, dict[str, int]] = defaultdict(dict)
        for name, n in arm.mix.items():
            for rank, row in enumerate(self.retrievers[name].rank_rows(q, n, q.context).tolist()):
                found[row][name] = rank
        rows = np.fromiter(found.keys(), dtype=np.int64, count=len(found))
        if len(rows) > self.config.max_candidates:  # keep the best-fused ones; the ranker's cost is linear
            keep = np.argsort(-rrf_scores(rows, found))[: self.config.max_candidates]
            rows = rows[keep]
        return rows, found

    def score(self, q: Query, rows: np.ndarray, found: dict[int, dict[str, int]]) -> tuple[np.ndarray, str, np.ndarray]:
        X = feature_matrix(q, rows)
        if self.ranker is not None:
            try:
                return self.ranker.predict(X), "ltr", X
            except NotTrainedError:
                pass
        return rrf_scores(rows, found), "rrf", X

    def search(self, text: str, k: int = 10, context: SearchContext | None = None, *, arm: Arm | None = None,
               explain: bool = False, rerank: int | None = None) -> SearchResult:
        """``rerank``: how many top results the second stage re-scores (None: its configured depth; 0: off)."""
        with self.index.guard.reading():  # an update or catch-up edits the index in place
            q = self.query(text, context)
            ctx = query_context(q)
            if arm is None:
                arm, propensity = self.bandit.choose(ctx)
            else:
                propensity = 1.0
            rows, found = self.candidates(q, arm)
            scores, ranker, X = self.score(q, rows, found)
            docs = [self.index.docs[int(r)] for r in rows]
        # Outside the lock: a cross-encoder pass can take 200 ms, and a waiting update holds off new queries.
        order, pair = self.rerank(q.text, rows, scores, rerank, docs=docs)
        if len(pair):
            ranker += "+ce"
        hits = []
        for pos, i in enumerate(order[:k]):
            doc = docs[i]
            hit = Hit(doc.id, doc.title, float(scores[i]), pos, dict(found[int(rows[i])]),
                      rerank_score=float(pair[pos]) if pos < len(pair) else None)
            if explain:
                hit.features = {n: round(float(v), 4) for n, v in zip(FEATURE_NAMES, X[i], strict=True) if v}
                hit.edges = q.edges_for(doc.id)
            hits.append(hit)
        slots = [{"field": s.field, "value": s.value, "weight": round(s.weight, 3), "source": s.source}
                 for s in q.slots]
        return SearchResult(q.text, uuid.uuid4().hex, arm.name, dict(arm.mix), propensity, ctx, ranker, hits,
                            slots, len(rows))

    def rerank(self, text: str, rows: np.ndarray, scores: np.ndarray, depth: int | None = None, *,
               docs: list | None = None) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[type-arg]
        """The final order of ``rows`` (indices, best first) and the second stage's scores of its head (empty
        when the stage is off or absent, or skipped for a query with observed clicks). ``docs``: the rows'
        documents, if already read."""
        stage = self.second_stage
        if stage is None and depth:
            raise ConfigError("this searcher has no second stage to re-rank with",
                              fix="pass second_stage=SecondStage(CrossEncoder()) to Searcher (SearchService does)")
        if stage is None or (depth if depth is not None else stage.depth) <= 0 or (
                depth is None and stage.skip_clicked and self.memory is not None and self.memory.has_observed(text)):
            # off, or shoppers' clicks on this query already rank it better than a fixed blend (SecondStage)
            return np.argsort(-scores, kind="stable"), np.zeros(0)
        # a depth asked for per request is honoured now; the configured one follows the stage's mode
        if docs is None:
            with self.index.guard.reading():
                docs = [self.index.docs[int(r)] for r in rows]
        return stage.rerank(text, docs, scores, depth, wait=True if depth is not None else None)
