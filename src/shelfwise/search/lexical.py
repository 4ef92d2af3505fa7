"""Per-field BM25 (bm25s) with incremental updates: a main index plus a small delta index.

bm25s cannot add documents to a built index, so new and changed documents go to a delta index that is
rebuilt on every change (it is small, so this takes milliseconds) and merged into the main index when it
grows past ``max_delta``. Deleted and superseded rows are tombstoned by the caller's ``alive`` mask.
Scores of both segments are returned as one full-corpus vector per field, so every candidate gets every
field's score as a ranking feature whichever strategy found it.
"""

from __future__ import annotations

import logging
from pathlib import Path

import bm25s
import numpy as np
import scipy.sparse as sp

from .config import FIELDS

__all__ = ["LexicalIndex"]

log = logging.getLogger("shelfwise.search")


def _bm25(corpus: list[list[str]]) -> bm25s.BM25:
    model = bm25s.BM25(k1=1.2, b=0.75)
    # bm25s needs at least one token per document; "" is its own padding token and matches no query.
    model.index([toks or [""] for toks in corpus], show_progress=False)
    return model


def _scores(model: bm25s.BM25 | None, tokens: list[str], n: int) -> np.ndarray:
    if model is None or n == 0:
        return np.zeros(n, dtype=np.float32)
    known = [t for t in tokens if t in model.vocab_dict and t]
    if not known:
        return np.zeros(n, dtype=np.float32)
    return np.asarray(model.get_scores(known), dtype=np.float32)


class _Segment:
    """One bm25s index per field over a contiguous block of rows, plus a token incidence matrix."""

    def __init__(self, rows: list[dict[str, list[str]]], vocab: dict[str, int],
                 models: dict[str, bm25s.BM25] | None = None) -> None:
        self.n = len(rows)
        self.models = models or ({f: _bm25([r[f] for r in rows]) for f in FIELDS} if rows else {})
        self.title_inc = self._incidence([set(r["title"]) for r in rows], vocab)
        self.all_inc = self._incidence([set().union(*(r[f] for f in FIELDS)) for r in rows], vocab)

    @staticmethod
    def _incidence(token_sets: list[set[str]], vocab: dict[str, int]) -> sp.csc_matrix:
        indptr, indices = [0], []
        for toks in token_sets:
            for t in toks:
                indices.append(vocab.setdefault(t, len(vocab)))
            indptr.append(len(indices))
        data = np.ones(len(indices), dtype=np.float32)
        # CSC: a query reads a handful of columns (its tokens), which CSC slices without scanning rows.
        return sp.csr_matrix((data, indices, indptr), shape=(len(token_sets), max(len(vocab), 1))).tocsc()

    def field_scores(self, tokens: list[str]) -> np.ndarray:
        return np.stack([_scores(self.models.get(f), tokens, self.n) for f in FIELDS]) if self.n else \
            np.zeros((len(FIELDS), 0), dtype=np.float32)

    def coverage(self, inc: sp.csc_matrix, ids: list[int]) -> np.ndarray:
        # Read the few columns straight from the CSC arrays: scipy's fancy column slicing costs ~1 ms a
        # query in object overhead, this is a bincount over the query tokens' postings (~20 us).
        cols = [i for i in ids if i < inc.shape[1]]
        if not cols or self.n == 0:
            return np.zeros(self.n, dtype=np.float32)
        ptr = inc.indptr
        rows = np.concatenate([inc.indices[ptr[c] : ptr[c + 1]] for c in cols])
        return np.bincount(rows, minlength=self.n).astype(np.float32) / max(len(ids), 1)


class LexicalIndex:
    def __init__(self, rows: list[dict[str, list[str]]], *, main_n: int | None = None,
                 main_models: dict[str, bm25s.BM25] | None = None) -> None:
        self.rows = rows  # field tokens per row, kept so the delta (and a merge) can be rebuilt
        self.vocab: dict[str, int] = {}
        self.main_n = len(rows) if main_n is None else main_n
        self.main = _Segment(rows[: self.main_n], self.vocab, main_models)
        self.delta = _Segment(rows[self.main_n :], self.vocab)

    @property
    def n(self) -> int:
        return len(self.rows)

    def append(self, tokens: dict[str, list[str]], *, rebuild: bool = True) -> int:
        """Add one row to the delta; returns its row number. ``rebuild=False`` defers rebuilding the delta
        (a batch of rows rebuilds it once, with ``rebuild_delta``; until then the new rows score nothing)."""
        self.rows.append(tokens)
        if rebuild:
            self.rebuild_delta()
        return self.n - 1

    def rebuild_delta(self) -> None:
        self.delta = _Segment(self.rows[self.main_n :], self.vocab)

    def needs_merge(self, max_delta: int) -> bool:
        return self.n - self.main_n > max_delta

    def field_scores(self, tokens: list[str]) -> np.ndarray:
        """(len(FIELDS), n_rows) BM25 scores of the query in every field."""
        return np.concatenate([self.main.field_scores(tokens), self.delta.field_scores(tokens)], axis=1)

    def coverage(self, tokens: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Fraction of distinct query tokens present in the title, and in any field, for every row."""
        ids = [self.vocab[t] for t in dict.fromkeys(tokens) if t in self.vocab]
        n_q = max(len(set(tokens)), 1)
        if not ids:
            z = np.zeros(self.n, dtype=np.float32)
            return z, z
        scale = len(ids) / n_q
        title = np.concatenate([self.main.coverage(self.main.title_inc, ids), self.delta.coverage(self.delta.title_inc, ids)])
        every = np.concatenate([self.main.coverage(self.main.all_inc, ids), self.delta.coverage(self.delta.all_inc, ids)])
        return (title * scale).astype(np.float32), (every * scale).astype(np.float32)

    # -- persistence: only the main segment's bm25s files; tokens travel with the index's row table ----
    def save_main(self, directory: Path) -> None:
        for f, model in self.main.models.items():
            model.save(str(directory / f"bm25_{f}"))

    @classmethod
    def load(cls, directory: Path, rows: list[dict[str, list[str]]], main_n: int) -> LexicalIndex:
        models = {f: bm25s.BM25.load(str(directory / f"bm25_{f}")) for f in FIELDS} if main_n else None
        return cls(rows, main_n=main_n, main_models=models)
