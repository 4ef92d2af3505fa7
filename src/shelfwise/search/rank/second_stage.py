"""An optional second stage: a cross-encoder re-scores the first ranker's top results.

A cross-encoder reads the query and a product together, so it sees interactions a feature vector cannot
("case for iphone 12" vs "iphone 12"), but costs a full model pass per pair. It therefore re-scores only the
top ``depth`` of the LambdaMART (or fusion) ranking and the two opinions are blended on a common scale:
``z(first) + weight * z(cross-encoder)``, each standardised within those ``depth`` results. Blending, not
replacing: the first stage knows popularity, clicks and exact attribute matches that the cross-encoder,
trained on web passages, does not. Depth 20 and weight 2 were chosen by 5-fold CV on the ESCI dev queries.

Scores are cached by (query, product text): head queries repeat, and a changed product text misses the cache
by itself, so an update never serves a stale score.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from ..documents import ProductDoc

__all__ = ["PairScorer", "SecondStage", "pair_text"]


class PairScorer(Protocol):
    """Anything that scores (query, document) pairs jointly, higher = more relevant (``CrossEncoder``)."""

    name: str

    def score(self, query: str, documents: list[str]) -> np.ndarray: ...


def pair_text(doc: ProductDoc) -> str:
    """What the cross-encoder reads of a product: what a shopper sees first. Longer text (bullets, the
    description) was no better on the ESCI dev queries and costs time linearly."""
    leaf = doc.category.split(">")[-1].strip()
    return ". ".join(x for x in (doc.title, doc.brand, leaf) if x)


def _z(a: np.ndarray) -> np.ndarray:
    return (a - a.mean()) / (a.std() + 1e-6)


class SecondStage:
    def __init__(self, scorer: PairScorer, *, depth: int = 20, weight: float = 2.0, cache_size: int = 50_000) -> None:
        if depth < 0 or weight < 0 or cache_size < 0:
            raise ValueError("depth, weight and cache_size must be >= 0")
        self.scorer, self.depth, self.weight, self.cache_size = scorer, depth, weight, cache_size
        self._cache: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._lock = threading.Lock()
        self.pairs_scored = 0  # model passes so far (cache misses): what the stage has cost

    def pair_scores(self, query: str, texts: list[str]) -> np.ndarray:
        with self._lock:
            known = {t: self._cache[(query, t)] for t in texts if (query, t) in self._cache}
            for t in known:
                self._cache.move_to_end((query, t))
        missing = list(dict.fromkeys(t for t in texts if t not in known))
        if missing:
            fresh = self.scorer.score(query, missing)
            with self._lock:
                self.pairs_scored += len(missing)
                for t, s in zip(missing, fresh.tolist(), strict=True):
                    known[t] = s
                    if self.cache_size:
                        self._cache[(query, t)] = s
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        return np.array([known[t] for t in texts], dtype=np.float64)

    def rerank(self, query: str, docs: Sequence[ProductDoc], first: np.ndarray, depth: int | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        """The final order (indices into ``docs``, best first, all of them) and the cross-encoder scores of
        the re-scored head (aligned with ``order[:len(scores)]``). ``depth`` overrides the configured one."""
        depth = self.depth if depth is None else depth
        order = np.argsort(-first, kind="stable")
        head = order[:depth]
        if len(head) < 2:  # nothing to reorder
            return order, np.zeros(0)
        pair = self.pair_scores(query, [pair_text(docs[i]) for i in head])
        blended = _z(first[head].astype(np.float64)) + self.weight * _z(pair)
        resort = np.argsort(-blended, kind="stable")
        return np.concatenate([head[resort], order[depth:]]), pair[resort]
