"""Query understanding: query tokens -> category and attribute values (slots), learned from the catalog
(brand, category path levels, enriched attribute values) and from clicks (which categories shoppers pick
for a token). Slots become filters and boosts in structured retrieval and features for ranking."""

from __future__ import annotations

import copy
import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .documents import ProductDoc
from .text import tokenize

__all__ = ["QueryUnderstanding", "Slot"]

_MAX_NGRAM = 4


@lru_cache(maxsize=65536)
def _query_tokens(query: str) -> frozenset[str]:
    """Stored click queries repeat in every refit of the click lexicon: tokenise each once."""
    return frozenset(tokenize(query))


@dataclass(frozen=True)
class Slot:
    field: str  # "category", "brand" or an attribute name
    value: str
    weight: float  # idf-like specificity x how much of the query it explains
    source: str  # "catalog" or "clicks"
    tokens: tuple[str, ...] = ()


class QueryUnderstanding:
    """Estimator-style: ``fit(docs, clicks)`` learns the lexicon; ``parse(query)`` returns slots;
    ``score(slots, n_rows)`` is the structured-match score of every row."""

    def __init__(self, max_df: float = 0.3, min_click_share: float = 0.3) -> None:
        self.max_df = max_df
        self.min_click_share = min_click_share

    def fit(self, docs: list[ProductDoc], clicks: Iterable[tuple[str, int]] = ()) -> QueryUnderstanding:
        self._fit_catalog(docs)
        self._fit_clicks(docs, clicks)
        return self

    def with_clicks(self, docs: list[ProductDoc], clicks: Iterable[tuple[str, int]]) -> QueryUnderstanding:
        """A copy that keeps this one's catalog lexicon (a pass over every product) and learns the clicks
        afresh: what a service does after feedback, which changes the clicks only."""
        relearned = copy.copy(self)
        relearned._fit_clicks(docs, clicks)
        return relearned

    def with_rows(self, docs: list[ProductDoc], rows: Iterable[int]) -> QueryUnderstanding:
        """A copy that also knows the values of ``docs[rows]`` (products indexed since the fit): each value
        gains the row; a value new to the lexicon enters with the specificity of a value one product has. The
        document frequencies of the rest, and the ``max_df`` cut, wait for the next full fit."""
        grown = copy.copy(self)
        grown.slot_rows_ = dict(self.slot_rows_)
        grown.lexicon_ = defaultdict(list, {k: list(v) for k, v in self.lexicon_.items()})
        added: dict[tuple[str, str], list[int]] = defaultdict(list)
        for row in rows:
            for key in self._values(docs[row]):
                added[key].append(row)
        n = max(len(docs), 1)
        for (field, value), new_rows in added.items():
            if (field, value) in self.too_common_:
                continue
            old = grown.slot_rows_.get((field, value))
            if old is None:
                toks = tuple(tokenize(value))
                if not toks or len(toks) > _MAX_NGRAM:
                    continue
                grown.lexicon_[toks].append((field, value, math.log(n / len(new_rows))))
                old = np.zeros(0, dtype=np.int64)
            grown.slot_rows_[(field, value)] = np.union1d(old, np.asarray(new_rows, dtype=np.int64))
        grown.n_rows_ = len(docs)
        return grown

    @staticmethod
    def _values(doc: ProductDoc) -> list[tuple[str, str]]:
        values = [("brand", doc.brand)] + [("category", c.strip()) for c in doc.category.split(">")[1:]]
        values += list(doc.attributes.items())
        return [(field, value.strip().lower()) for field, value in values if value and len(value) <= 60]

    def _fit_catalog(self, docs: list[ProductDoc]) -> None:
        n = max(len(docs), 1)
        rows_of: dict[tuple[str, str], list[int]] = defaultdict(list)
        for row, doc in enumerate(docs):
            for key in self._values(doc):
                rows_of[key].append(row)
        self.slot_rows_: dict[tuple[str, str], np.ndarray] = {}
        self.lexicon_: dict[tuple[str, ...], list[tuple[str, str, float]]] = defaultdict(list)
        self.too_common_: set[tuple[str, str]] = set()  # values left out for being on too many products
        for (field, value), rows in rows_of.items():
            if len(rows) > self.max_df * n:
                self.too_common_.add((field, value))
                continue
            toks = tuple(tokenize(value))
            if not toks or len(toks) > _MAX_NGRAM:
                continue
            self.slot_rows_[(field, value)] = np.asarray(sorted(set(rows)), dtype=np.int64)
            self.lexicon_[toks].append((field, value, math.log(n / len(rows))))
        self.n_rows_ = len(docs)

    def _fit_clicks(self, docs: list[ProductDoc], clicks: Iterable[tuple[str, int]]) -> None:
        # From clicks: token -> category shares, kept when one category takes a clear share of the clicks.
        cat_counts: dict[str, Counter[str]] = defaultdict(Counter)
        for query, row in clicks:
            if 0 <= row < len(docs) and docs[row].category:
                leaf = docs[row].category.split(">")[-1].strip().lower()
                for tok in _query_tokens(query):
                    cat_counts[tok][leaf] += 1
        self.click_lexicon_: dict[str, list[tuple[str, float]]] = {}
        for tok, counts in cat_counts.items():
            total = sum(counts.values())
            kept = [(c, k / total) for c, k in counts.most_common(3) if k / total >= self.min_click_share and total >= 2]
            if kept:
                self.click_lexicon_[tok] = [(c, s) for c, s in kept if ("category", c) in self.slot_rows_]

    def parse(self, query: str, tokens: list[str] | None = None) -> list[Slot]:
        toks = tokens if tokens is not None else tokenize(query)
        slots: dict[tuple[str, str], Slot] = {}
        for size in range(min(_MAX_NGRAM, len(toks)), 0, -1):
            for start in range(len(toks) - size + 1):
                gram = tuple(toks[start : start + size])
                for field, value, idf in self.lexicon_.get(gram, ()):
                    weight = idf * size / max(len(toks), 1)
                    if (field, value) not in slots or slots[(field, value)].weight < weight:
                        slots[(field, value)] = Slot(field, value, weight, "catalog", gram)
        for tok in toks:
            for cat, share in self.click_lexicon_.get(tok, ()):
                key = ("category", cat)
                w = share * 2.0 / max(len(toks), 1)
                if key in slots:
                    old = slots[key]
                    slots[key] = Slot(old.field, old.value, old.weight + w, "catalog+clicks", old.tokens)
                else:
                    slots[key] = Slot("category", cat, w, "clicks", (tok,))
        return sorted(slots.values(), key=lambda s: -s.weight)

    def score(self, slots: list[Slot], n_rows: int) -> tuple[np.ndarray, np.ndarray]:
        """(weighted slot-match score, number of matched slots) for every row."""
        score = np.zeros(n_rows, dtype=np.float32)
        count = np.zeros(n_rows, dtype=np.float32)
        for slot in slots:
            rows = self.slot_rows_.get((slot.field, slot.value))
            if rows is not None:
                rows = rows[rows < n_rows]
                score[rows] += slot.weight
                count[rows] += 1
        return score, count
