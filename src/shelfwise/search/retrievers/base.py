"""The one interface every retrieval strategy implements, and the registry that finds them by name."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from ...errors import UnknownNameError

if TYPE_CHECKING:
    from ..query import Query, SearchContext

__all__ = ["REGISTRY", "Candidate", "Retriever", "get_retriever", "register", "top_rows"]


@dataclass
class Candidate:
    product_id: str
    row: int
    score: float
    strategy: str
    rank: int
    features: dict[str, float] = field(default_factory=dict)


def top_rows(score: np.ndarray, k: int, mask: np.ndarray) -> np.ndarray:
    """Rows of the k best positive scores among ``mask``, best first (argpartition, then a small sort)."""
    valid = np.flatnonzero(mask & (score > 0))
    if len(valid) == 0 or k <= 0:
        return np.zeros(0, dtype=np.int64)
    if len(valid) > k:
        part = np.argpartition(-score[valid], k - 1)[:k]
        valid = valid[part]
    return valid[np.argsort(-score[valid], kind="stable")]


class Retriever:
    """A strategy: ``retrieve(query, k, context) -> list[Candidate]`` with the strategy's own features."""

    name: ClassVar[str] = ""

    def scores(self, query: Query) -> np.ndarray:  # the full-corpus score this strategy ranks by
        raise NotImplementedError

    def features(self, query: Query, rows: np.ndarray) -> dict[str, np.ndarray]:
        return {}

    def _ranked(self, query: Query, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(the top ``k`` live rows best first, the full-corpus score they were ranked by)."""
        score = self.scores(query)
        return top_rows(score, k, query.alive), score

    def rank_rows(self, query: Query, k: int, context: SearchContext | None = None) -> np.ndarray:
        """Just the rows, best first: what the request path needs (no per-candidate objects)."""
        return self._ranked(query, k)[0]

    def retrieve(self, query: Query, k: int, context: SearchContext | None = None) -> list[Candidate]:
        rows, score = self._ranked(query, k)
        feats = self.features(query, rows)
        ids = query.index.ids
        return [
            Candidate(ids[r], int(r), float(score[r]), self.name, i,
                      {name: float(values[i]) for name, values in feats.items()})
            for i, r in enumerate(rows)
        ]


REGISTRY: dict[str, type[Retriever]] = {}


def register(cls: type[Retriever]) -> type[Retriever]:
    REGISTRY[cls.name] = cls
    return cls


def get_retriever(name: str) -> Retriever:
    try:
        return REGISTRY[name]()
    except KeyError:
        raise UnknownNameError("retrieval strategy", name, list(REGISTRY)) from None
