"""Retrieval strategies behind one interface, found by name in ``REGISTRY``."""

from .base import REGISTRY, Candidate, Retriever, get_retriever, register, top_rows
from .strategies import (
    DenseRetriever,
    IntentRetriever,
    LexicalRetriever,
    MemoryRetriever,
    StructuredRetriever,
    union_rows,
)

__all__ = [
    "REGISTRY",
    "Candidate",
    "DenseRetriever",
    "IntentRetriever",
    "LexicalRetriever",
    "MemoryRetriever",
    "Retriever",
    "StructuredRetriever",
    "get_retriever",
    "register",
    "top_rows",
    "union_rows",
]
