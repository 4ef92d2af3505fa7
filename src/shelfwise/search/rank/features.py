"""Ranking features for a query and a set of candidate rows, as one float32 matrix (no per-row Python).

Every feature is a slice of a full-corpus vector, so it does not depend on which strategies the bandit
ran: the ranker sees the same inputs whatever mix produced the candidates."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..config import FIELDS

if TYPE_CHECKING:
    from ..query import Query

__all__ = ["FEATURE_NAMES", "feature_matrix"]

FEATURE_NAMES: tuple[str, ...] = (
    *(f"bm25_{f}" for f in FIELDS),
    "bm25", "bm25_norm", "bm25_all_norm", "cosine", "cosine_gap", "cov_title", "cov_all",
    "slot_score", "slots_matched", "memory", "memory_observed", "intent",
    "popularity", "rating", "q_tokens", "q_has_digit", "q_slots",
)


def feature_matrix(query: Query, rows: np.ndarray) -> np.ndarray:
    rows = np.asarray(rows, dtype=np.int64)
    bm25 = query.bm25
    cosine = query.cosine_of(rows)
    alive = query.alive
    bm25_max = float(bm25[alive].max()) if alive.any() else 0.0
    all_scores = query.field_scores[FIELDS.index("all")]  # every field concatenated: plain BM25
    all_max = float(all_scores[alive].max()) if alive.any() else 0.0
    cos_max = max(query.cosine_max, float(cosine.max(initial=0.0)))
    cov_title, cov_all = query.coverage
    slot_score, slot_count = query.structured
    mem_total, mem_seen = query.memory
    n = len(rows)
    q_tokens = float(len(query.tokens))
    q_digit = float(any(ch.isdigit() for ch in query.text))
    columns = [
        *query.field_scores[:, rows],
        bm25[rows], bm25[rows] / (bm25_max or 1.0), all_scores[rows] / (all_max or 1.0), cosine,
        cos_max - cosine,
        cov_title[rows], cov_all[rows], slot_score[rows], slot_count[rows], mem_total[rows], mem_seen[rows],
        query.intent[rows], query.index.popularity[rows], query.index.rating[rows],
        np.full(n, q_tokens), np.full(n, q_digit), np.full(n, float(len(query.slots))),
    ]
    return np.column_stack(columns).astype(np.float32) if n else np.zeros((0, len(FEATURE_NAMES)), np.float32)
