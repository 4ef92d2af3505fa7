"""The memory index: which products worked for which queries (clicks, carts, purchases, minus returns),
time-decayed, with doc2query-style predicted queries standing in for products nobody has clicked yet.

Scores live in the ``search_memory`` table (the truth, shared by processes); ``MemoryIndex`` is a
read-optimised snapshot: a sparse (query key x row) score matrix and a (query key x token) incidence, so a
query is matched to similar stored queries by token overlap with two sparse products, no Python loops.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import numpy as np
import scipy.sparse as sp
from sqlalchemy import select
from sqlalchemy.orm import Session

from .clock import utcnow
from .documents import ProductDoc
from .models import MemoryEntry
from .text import normalize_query, tokenize

__all__ = ["FEEDBACK_WEIGHTS", "LayeredMemory", "MemoryIndex", "predicted_queries", "read_entries", "record_interaction",
           "store_predicted"]

# What one event says about a (query, product) pair, in clicks.
FEEDBACK_WEIGHTS = {"click": 1.0, "add_to_cart": 2.0, "purchase": 4.0, "customer_return": -3.0}


def _decay(age_days: float, half_life: float) -> float:
    return 0.5 ** (max(age_days, 0.0) / half_life)


def record_interaction(session: Session, query: str, product_id: str, kind: str, *, half_life_days: float,
                       now: datetime | None = None) -> float:
    """Fold one interaction into the stored, decayed score; returns the new score (never below 0)."""
    key = normalize_query(query)
    if not key:
        return 0.0
    now = now or utcnow()
    row = session.scalar(select(MemoryEntry).where(MemoryEntry.query_key == key, MemoryEntry.product_id == product_id,
                                                   MemoryEntry.source == "observed"))
    if row is None:
        row = MemoryEntry(query_key=key, product_id=product_id, source="observed", score=0.0, events=0, updated_at=now)
        session.add(row)
    age = (now - row.updated_at).total_seconds() / 86400 if row.updated_at else 0.0
    row.score = max(0.0, row.score * _decay(age, half_life_days) + FEEDBACK_WEIGHTS[kind])
    row.events += 1
    row.updated_at = now
    session.flush()
    return row.score


def predicted_queries(doc: ProductDoc, intents: list[tuple[str, float]] = ()) -> list[tuple[str, float]]:
    """Queries a shopper might type for this product, generated offline from its own fields (and the
    intent graph's tags when available): leaf category alone and with brand and attribute values, and the
    title's head. No model call: it runs for every product at index time."""
    leaf = doc.category.split(">")[-1].strip()
    head = " ".join(doc.title.split()[:4])
    out: list[tuple[str, float]] = [(head, 1.0)]
    if leaf:
        out.append((leaf, 0.5))
        if doc.brand:
            out.append((f"{doc.brand} {leaf}", 1.0))
        out.extend((f"{v} {leaf}", 0.8) for v in list(doc.attributes.values())[:4] if len(v) <= 30)
    out.extend((intent, 0.8 * float(score)) for intent, score in intents)
    return out


def store_predicted(session: Session, docs: list[ProductDoc], intents: dict[str, list[tuple[str, float]]] | None = None) -> int:
    """Replace the predicted rows of ``docs``' products; returns how many were written."""
    ids = [d.id for d in docs]
    for chunk in range(0, len(ids), 500):
        session.query(MemoryEntry).filter(MemoryEntry.source == "predicted",
                                          MemoryEntry.product_id.in_(ids[chunk : chunk + 500])).delete(
            synchronize_session=False)
    rows = []
    for doc in docs:
        best: dict[str, float] = {}
        for text, score in predicted_queries(doc, (intents or {}).get(doc.id, [])):
            key = normalize_query(text)
            if key:
                best[key] = max(best.get(key, 0.0), score)
        rows.extend({"query_key": k, "product_id": doc.id, "source": "predicted", "score": s, "events": 0,
                     "updated_at": utcnow()} for k, s in best.items())
    if rows:
        session.execute(MemoryEntry.__table__.insert(), rows)
    return len(rows)


def read_entries(session: Session, source: str | None = None, product_ids: list[str] | None = None
                 ) -> list[Any]:
    """Stored memory entries as (query key, product id, source, score, updated at), of one ``source`` and of
    the products ``product_ids`` only, if given."""
    stmt = select(MemoryEntry.query_key, MemoryEntry.product_id, MemoryEntry.source, MemoryEntry.score,
                  MemoryEntry.updated_at)
    if source is not None:
        stmt = stmt.where(MemoryEntry.source == source)
    if product_ids is None:
        return list(session.execute(stmt))
    return [r for i in range(0, len(product_ids), 500)  # chunks: SQLite bounds the parameters of one IN
            for r in session.execute(stmt.where(MemoryEntry.product_id.in_(product_ids[i : i + 500])))]


def _weighted_rows(matrix: sp.csr_matrix, keys: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """sum_i weights[i] * matrix[keys[i]], dense over all rows (one bincount, no Python loop)."""
    ptr = matrix.indptr
    lens = ptr[keys + 1] - ptr[keys]
    if not lens.sum():
        return np.zeros(matrix.shape[1], dtype=np.float32)
    # positions of every stored entry of the chosen keys in matrix.indices/data
    offsets = np.repeat(ptr[keys] - np.concatenate([[0], np.cumsum(lens)[:-1]]), lens) + np.arange(lens.sum())
    values = matrix.data[offsets] * np.repeat(weights, lens)
    return np.bincount(matrix.indices[offsets], weights=values, minlength=matrix.shape[1])


class MemoryIndex:
    def __init__(self, keys: list[str], key_tokens: sp.csr_matrix, scores: sp.csr_matrix, observed: sp.csr_matrix,
                 vocab: dict[str, int]) -> None:
        self.keys, self.key_tokens, self.scores, self.observed, self.vocab = keys, key_tokens, scores, observed, vocab
        self.key_len = np.asarray(key_tokens.sum(axis=1)).ravel()
        self._token_keys = key_tokens.tocsc()  # token -> the stored keys containing it, read per query
        self.key_of = {k: i for i, k in enumerate(keys)}

    @classmethod
    def load(cls, session: Session, row_of: dict[str, int], n_rows: int, *, half_life_days: float,
             predicted_weight: float, now: datetime | None = None, source: str | None = None,
             product_ids: list[str] | None = None) -> MemoryIndex:
        """The stored entries over ``n_rows`` (of one ``source`` only, "observed" or "predicted", and of the
        products ``product_ids`` only, if given)."""
        return cls.from_entries(read_entries(session, source, product_ids), row_of, n_rows, now=now,
                                half_life_days=half_life_days, predicted_weight=predicted_weight)

    @classmethod
    def from_entries(cls, entries: Iterable[Sequence[Any]], row_of: dict[str, int], n_rows: int, *,
                     half_life_days: float, predicted_weight: float, now: datetime | None = None) -> MemoryIndex:
        """From ``read_entries`` rows: (query key, product id, source, score, updated at)."""
        now = now or utcnow()
        total: dict[tuple[str, int], float] = defaultdict(float)
        seen: dict[tuple[str, int], float] = defaultdict(float)
        for key, pid, kind, score, ts in entries:
            row = row_of.get(pid)
            if row is None or row >= n_rows or score <= 0:
                continue
            if kind == "observed":
                value = score * _decay((now - ts).total_seconds() / 86400, half_life_days)
                seen[(key, row)] += value
            else:
                value = predicted_weight * score
            total[(key, row)] += value
        keys = sorted({k for k, _ in total})
        key_of = {k: i for i, k in enumerate(keys)}
        vocab: dict[str, int] = {}
        tok_rows, tok_cols = [], []
        for i, key in enumerate(keys):
            for t in key.split():
                tok_rows.append(i)
                tok_cols.append(vocab.setdefault(t, len(vocab)))
        key_tokens = sp.csr_matrix((np.ones(len(tok_rows), np.float32), (tok_rows, tok_cols)),
                                   shape=(len(keys), max(len(vocab), 1)))

        def matrix(data: dict[tuple[str, int], float]) -> sp.csr_matrix:
            if not data:
                return sp.csr_matrix((len(keys), n_rows), dtype=np.float32)
            r, c, v = zip(*((key_of[k], row, val) for (k, row), val in data.items()), strict=True)
            return sp.csr_matrix((np.asarray(v, np.float32), (r, c)), shape=(len(keys), n_rows))

        return cls(keys, key_tokens, matrix(total), matrix(seen), vocab)

    def lookup(self, query: str, *, min_similarity: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
        """(score per row, observed-only score per row) from stored queries similar to ``query``:
        Jaccard similarity of token sets, squared so exact matches dominate near ones; log1p-damped."""
        total, seen = self.lookup_sums(query, min_similarity=min_similarity)
        return np.log1p(total).astype(np.float32), np.log1p(seen).astype(np.float32)

    def lookup_sums(self, query: str, *, min_similarity: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
        """``lookup`` before the damping: sums, so two memories' lookups add up to their union's."""
        n_rows = self.scores.shape[1]
        q = [self.vocab[t] for t in set(normalize_query(query).split()) if t in self.vocab]
        if not q or not self.keys:
            z = np.zeros(n_rows, dtype=np.float64)
            return z, z
        # Straight from the sparse arrays (no scipy slicing objects): ~50 us instead of ~5 ms a query.
        ptr, idx = self._token_keys.indptr, self._token_keys.indices
        keys, overlap = np.unique(np.concatenate([idx[ptr[c] : ptr[c + 1]] for c in q]), return_counts=True)
        n_q = len(set(tokenize(query)))
        sim = overlap / np.maximum(self.key_len[keys] + n_q - overlap, 1)
        near = sim >= min_similarity
        keys, weights = keys[near], (sim[near] ** 2).astype(np.float32)
        return _weighted_rows(self.scores, keys, weights), _weighted_rows(self.observed, keys, weights)

    def has_observed(self, query: str) -> bool:
        i = self.key_of.get(normalize_query(query))
        return i is not None and self.observed[i].nnz > 0


class LayeredMemory:
    """The memory index as layers loaded apart: predicted queries (one set per product: they change with the
    catalog; a second layer holds the products indexed since the first was read) and observed clicks and
    purchases (they change with every piece of feedback). A click then costs reloading the clicks, not every
    product's predicted queries. Lookups equal one ``MemoryIndex`` over all of them (sums add up before the
    log1p damping)."""

    def __init__(self, predicted: list[MemoryIndex], observed: MemoryIndex) -> None:
        self.predicted, self.observed = predicted, observed

    def lookup(self, query: str, *, min_similarity: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
        sums = [layer.lookup_sums(query, min_similarity=min_similarity)[0] for layer in self.predicted]
        o_total, o_seen = self.observed.lookup_sums(query, min_similarity=min_similarity)
        sums.append(o_total)
        total = np.zeros(max(len(x) for x in sums))  # a layer loaded before rows were appended is shorter
        for part in sums:
            total[: len(part)] += part
        seen = np.zeros(len(total))
        seen[: len(o_seen)] = o_seen
        return np.log1p(total).astype(np.float32), np.log1p(seen).astype(np.float32)

    def has_observed(self, query: str) -> bool:
        return self.observed.has_observed(query)
