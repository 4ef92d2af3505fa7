"""What a service derives from the catalog and from shoppers besides the index: the memory index and query
understanding, kept current after index changes and feedback at the cost of the change.

Three parts change at different rates: predicted queries and the catalog lexicon with the products, the
observed memory and the click lexicon with every piece of feedback. A full pass over the catalog (0.45 s
for the lexicon alone at 108 k products) is made only on the first load, after rows were renumbered (a merge
of the BM25 delta) or once the rows appended since the last pass outgrow ``max(MIN_DELTA_ROWS, DELTA_SHARE ×
rows)``; otherwise an index change re-reads just the appended rows' predicted queries (a second predicted
layer) and adds their values to the lexicon, and feedback re-reads just the observed layer.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

import numpy as np
from sqlalchemy.orm import Session

from .config import SearchConfig
from .documents import ProductDoc
from .index import SearchIndex
from .memory import LayeredMemory, MemoryIndex, read_entries
from .understanding import QueryUnderstanding

__all__ = ["DELTA_SHARE", "MIN_DELTA_ROWS", "ShopperSignals"]

# A small catalog is cheap to pass over and its lexicon's document frequencies (and the cut of values on too
# many products) shift fast with each new product: a low floor keeps the delta a small share of it.
MIN_DELTA_ROWS = 50
DELTA_SHARE = 0.05


@dataclass
class _Snapshot:
    """The rows of an index at one moment (the lists and maps copied; the documents shared, never edited)."""

    index: SearchIndex
    docs: list[ProductDoc]
    row_of: dict[str, int]
    alive: np.ndarray
    compactions: int


@dataclass
class _CatalogPass:
    index: SearchIndex
    compactions: int  # the index's count when the pass ran: another means renumbered rows
    rows: int  # rows the full pass covered; later rows are the delta
    predicted: MemoryIndex
    understanding: QueryUnderstanding


class ShopperSignals:
    """``refresh(index)`` returns the memory and query understanding for a searcher over ``index``, redoing
    as little as it can: it sees for itself whether rows were appended or renumbered since the last call."""

    def __init__(self, sessions: Callable[[], AbstractContextManager[Session]], config: SearchConfig) -> None:
        self.sessions, self.config = sessions, config
        self._full: _CatalogPass | None = None
        self._delta: tuple[int, MemoryIndex | None, QueryUnderstanding] | None = None  # (rows covered, …)
        self.full_passes = 0  # how many times the whole catalog was read (tests and metrics)
        self._lock = threading.Lock()  # a request's refresh and a background one share the cached passes

    def _load(self, snap: _Snapshot, source: str, product_ids: list[str] | None = None) -> MemoryIndex:
        with self.sessions() as s:
            return self._build(snap, read_entries(s, source, product_ids))

    def _build(self, snap: _Snapshot, entries: list) -> MemoryIndex:  # type: ignore[type-arg]
        return MemoryIndex.from_entries(entries, snap.row_of, len(snap.docs),
                                        half_life_days=self.config.memory_half_life_days,
                                        predicted_weight=self.config.predicted_query_weight)

    def _catalog(self, snap: _Snapshot) -> tuple[list[MemoryIndex], QueryUnderstanding]:
        full = self._full
        n = len(snap.docs)
        if (full is None or full.index is not snap.index or full.compactions != snap.compactions
                or n - full.rows > max(MIN_DELTA_ROWS, DELTA_SHARE * n)):
            full = self._full = _CatalogPass(snap.index, snap.compactions, n, self._load(snap, "predicted"),
                                             QueryUnderstanding().fit(snap.docs))
            self._delta = None
            self.full_passes += 1
        if n == full.rows:
            return [full.predicted], full.understanding
        if self._delta is None or self._delta[0] != n:
            # Rows appended since the full pass: new products and new versions of old ones (their old rows are
            # tombstoned, so old layers' scores on them are never read).
            ids = [snap.docs[r].id for r in range(full.rows, n) if snap.alive[r]]
            self._delta = (n, self._load(snap, "predicted", ids) if ids else None,
                           full.understanding.with_rows(snap.docs, range(full.rows, n)))
        _, predicted, understanding = self._delta
        return [full.predicted] + ([predicted] if predicted is not None else []), understanding

    def refresh(self, index: SearchIndex) -> tuple[LayeredMemory, QueryUnderstanding]:
        # The index's rows are copied under its read lock (a catch-up edits them in place); the database reads
        # and fits run outside it, so a waiting update, and the queries behind it, never wait for them.
        with self._lock:
            with index.guard.reading():
                snap = _Snapshot(index, list(index.docs), dict(index.row_of), index.alive.copy(), index.compactions)
            predicted, understanding = self._catalog(snap)
            with self.sessions() as s:
                entries = read_entries(s, "observed")  # one read for the observed layer and the click lexicon
            pairs = [(key, snap.row_of[pid]) for key, pid, _, score, _ in entries
                     if score > 0 and pid in snap.row_of]
            return (LayeredMemory(predicted, self._build(snap, entries)),
                    understanding.with_clicks(snap.docs, pairs))
