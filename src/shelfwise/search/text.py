"""Tokenising queries and product fields the same way, so lexical scores and query understanding agree."""

from __future__ import annotations

import re
from functools import lru_cache

import Stemmer

__all__ = ["STOPWORDS", "normalize_query", "tokenize"]

_TOKEN = re.compile(r"[^\W_]+", re.UNICODE)
STOPWORDS = frozenset(
    ["a", "an", "and", "are", "as", "at", "be", "by", "for", "from", "in", "into", "is", "it", "of", "on", "or", "s", "t", "the", "to", "with", "without"]
)
_stemmer = Stemmer.Stemmer("english")


@lru_cache(maxsize=200_000)
def _stem(word: str) -> str:
    return _stemmer.stemWord(word)


def tokenize(text: str, *, limit: int | None = None) -> list[str]:
    """Lower-cased, stemmed word tokens without stop words (digits kept: sizes and model numbers matter)."""
    out: list[str] = []
    for match in _TOKEN.finditer(text.lower()):
        word = match.group()
        if word in STOPWORDS:
            continue
        out.append(_stem(word))
        if limit is not None and len(out) >= limit:
            break
    return out


def normalize_query(text: str) -> str:
    """The memory-index key of a query: its sorted distinct tokens ("Red Shoes" == "shoe red")."""
    return " ".join(sorted(set(tokenize(text))))
