"""One parsed query and the full-corpus score vectors every strategy and the ranker share.

Each vector is computed at most once per request, lazily, with numpy over all rows (a few thousand to tens
of thousands): cheaper and simpler than per-candidate lookups, and it gives every candidate every feature.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np

from ..contracts import IntentHit, IntentSource
from ..errors import InputError
from . import clock
from .config import FIELDS, SearchConfig
from .text import tokenize

if TYPE_CHECKING:
    from .index import Embedder, SearchIndex
    from .memory import MemoryIndex
    from .understanding import QueryUnderstanding, Slot

__all__ = ["Query", "SearchContext", "validate_query"]


@dataclass(frozen=True)
class SearchContext:
    user_segment: str | None = None
    now: datetime = field(default_factory=clock.now)
    extra: dict[str, Any] = field(default_factory=dict)


def validate_query(query: object, config: SearchConfig) -> str:
    if not isinstance(query, str):
        raise InputError(f"a search query must be text, got {type(query).__name__}", fix="send the query as a string")
    # NUL is never typed by a shopper, and PostgreSQL's JSONB (the logged impression) rejects it.
    text = query.replace("\x00", "").strip()
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: not text any client could have sent, and unstorable
        raise InputError("the search query is not valid Unicode text (it has a lone surrogate)",
                         fix="send the query as UTF-8 text") from None
    if not text:
        raise InputError("the search query is empty", fix="type at least one word")
    if len(text) > config.max_query_chars:
        raise InputError(f"the search query is {len(text)} characters long (limit {config.max_query_chars})",
                         fix="shorten the query to a few words")
    if not tokenize(text):
        raise InputError(f"the query {text[:40]!r} has no searchable words (only punctuation or stop words)",
                         fix="use letters or digits")
    return text


class Query:
    def __init__(self, text: str, index: SearchIndex, *, embedder: Embedder, memory: MemoryIndex | None,
                 understanding: QueryUnderstanding | None, intents: IntentSource | None, config: SearchConfig,
                 context: SearchContext | None = None) -> None:
        self.text = validate_query(text, config)
        self.tokens = tokenize(self.text, limit=config.max_query_tokens)
        self.index, self.embedder, self.memory_index = index, embedder, memory
        self.understanding, self.intent_source, self.config = understanding, intents, config
        self.context = context or SearchContext()
        self.n = len(index.docs)

    @cached_property
    def alive(self) -> np.ndarray:
        return self.index.alive

    @cached_property
    def field_scores(self) -> np.ndarray:
        return self.index.lexical.field_scores(self.tokens)

    @cached_property
    def bm25(self) -> np.ndarray:
        w = np.array([self.config.field_weights[f] for f in FIELDS], dtype=np.float32)
        return w @ self.field_scores

    @cached_property
    def coverage(self) -> tuple[np.ndarray, np.ndarray]:
        return self.index.lexical.coverage(self.tokens)

    @cached_property
    def vector(self) -> np.ndarray:
        embed_query = getattr(self.embedder, "embed_query", None)  # the fast single-query path, when there is one
        return embed_query(self.text) if embed_query is not None else self.embedder.embed([self.text])[0]

    def dense_search(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Approximate nearest rows (usearch), cached: a later call with a smaller k reuses the result."""
        cached = getattr(self, "_dense", None)
        if cached is None or cached[0] < k:
            rows, sims = self.index.dense.search(self.vector, k)
            self._dense = cached = (k, rows, sims)
        return cached[1][:k], cached[2][:k]

    def cosine_of(self, rows: np.ndarray) -> np.ndarray:
        """Exact cosine for some rows only: never a pass over the whole catalog on the request path."""
        return self.index.dense.vectors[rows] @ self.vector

    @cached_property
    def cosine_max(self) -> float:
        _rows, sims = self.dense_search(1)
        return float(sims[0]) if len(sims) else 0.0

    @cached_property
    def slots(self) -> list[Slot]:
        return self.understanding.parse(self.text, self.tokens) if self.understanding else []

    @cached_property
    def structured(self) -> tuple[np.ndarray, np.ndarray]:
        if not self.understanding:
            z = np.zeros(self.n, dtype=np.float32)
            return z, z
        return self.understanding.score(self.slots, self.n)

    @cached_property
    def memory(self) -> tuple[np.ndarray, np.ndarray]:
        if self.memory_index is None:
            z = np.zeros(self.n, dtype=np.float32)
            return z, z
        total, seen = self.memory_index.lookup(self.text)
        if len(total) < self.n:  # rows appended since the memory snapshot was taken
            pad = np.zeros(self.n - len(total), dtype=np.float32)
            total, seen = np.concatenate([total, pad]), np.concatenate([seen, pad])
        # Rows renumbered (fewer) since: the snapshot is refreshed in the background; until then its scores
        # land on the wrong rows, but every array a query combines has the index's length.
        return total[: self.n], seen[: self.n]

    @cached_property
    def intent_hits(self) -> list[IntentHit]:
        if self.intent_source is None:
            return []
        return list(self.intent_source.expand(self.text, k=10))

    @cached_property
    def intent(self) -> np.ndarray:
        score = np.zeros(self.n, dtype=np.float32)
        for hit in self.intent_hits:
            rows = [self.index.row_of[p] for p in hit.product_ids if p in self.index.row_of]
            if rows:
                np.maximum.at(score, np.asarray(rows), float(hit.score))
        return score

    def edges_for(self, product_id: str) -> list[int]:
        return sorted({e for h in self.intent_hits if product_id in h.product_ids for e in h.edge_ids})
