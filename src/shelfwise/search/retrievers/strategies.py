"""The five retrieval strategies. Each ranks rows by one full-corpus score vector from ``Query``."""

from __future__ import annotations

import numpy as np

from ..query import Query, SearchContext
from .base import Candidate, Retriever, register

__all__ = ["DenseRetriever", "IntentRetriever", "LexicalRetriever", "MemoryRetriever", "StructuredRetriever"]

@register
class LexicalRetriever(Retriever):
    """Weighted per-field BM25 plus a popularity prior (only for rows that match at all)."""

    name = "lexical"

    def scores(self, query: Query) -> np.ndarray:
        bm25 = query.bm25
        prior = query.config.popularity_weight * query.index.popularity
        return np.where(bm25 > 0, bm25 + prior, 0.0)

    def features(self, query: Query, rows: np.ndarray) -> dict[str, np.ndarray]:
        return {"bm25": query.bm25[rows], "popularity": query.index.popularity[rows]}

@register
class StructuredRetriever(Retriever):
    """Rows matching the understood slots (category, brand, attribute values), BM25 breaking ties.
    No slots -> no candidates: the filter would be empty."""

    name = "structured"

    def scores(self, query: Query) -> np.ndarray:
        slot_score, _ = query.structured
        bm25 = query.bm25
        top = float(bm25.max()) if len(bm25) else 0.0
        return np.where(slot_score > 0, slot_score + 0.5 * bm25 / (top or 1.0), 0.0)

    def features(self, query: Query, rows: np.ndarray) -> dict[str, np.ndarray]:
        score, count = query.structured
        return {"slot_score": score[rows], "slots_matched": count[rows]}

@register
class DenseRetriever(Retriever):
    """Nearest neighbours of the query embedding (usearch HNSW)."""

    name = "dense"

    def scores(self, query: Query) -> np.ndarray:
        return np.maximum(query.index.dense.similarity(query.vector), 0.0)  # full pass: offline use only

    def _rows_sims(self, query: Query, k: int) -> tuple[np.ndarray, np.ndarray]:
        rows, sims = query.dense_search(k + 8)  # a few spare for tombstoned rows
        keep = query.alive[rows] if len(rows) else np.zeros(0, dtype=bool)
        return rows[keep][:k], sims[keep][:k]

    def rank_rows(self, query: Query, k: int, context: SearchContext | None = None) -> np.ndarray:
        return self._rows_sims(query, k)[0]

    def retrieve(self, query: Query, k: int, context: SearchContext | None = None) -> list[Candidate]:
        rows, sims = self._rows_sims(query, k)
        ids = query.index.ids
        return [Candidate(ids[r], int(r), float(s), self.name, i, {"cosine": float(s)})
                for i, (r, s) in enumerate(zip(rows, sims, strict=True))]

@register
class MemoryRetriever(Retriever):
    """Products that worked for this or similar queries (observed, decayed) or were predicted for them."""

    name = "memory"

    def scores(self, query: Query) -> np.ndarray:
        return query.memory[0]

    def features(self, query: Query, rows: np.ndarray) -> dict[str, np.ndarray]:
        total, seen = query.memory
        return {"memory": total[rows], "memory_observed": seen[rows]}

@register
class IntentRetriever(Retriever):
    """Products the intent knowledge graph links to the query's intents; nothing when no graph is plugged in."""

    name = "intent"

    def scores(self, query: Query) -> np.ndarray:
        return query.intent

    def _ranked(self, query: Query, k: int) -> tuple[np.ndarray, np.ndarray]:
        if query.intent_source is None:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        return super()._ranked(query, k)

    def features(self, query: Query, rows: np.ndarray) -> dict[str, np.ndarray]:
        return {"intent": query.intent[rows]}

def union_rows(candidates: list[Candidate]) -> np.ndarray:
    return np.unique(np.fromiter((c.row for c in candidates), dtype=np.int64, count=len(candidates)))
