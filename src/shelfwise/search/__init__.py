"""Search: learning to rank and retrieve. Strategies (lexical, structured, dense, memory, intent) retrieve
candidates; a contextual bandit chooses the strategy mix; a LambdaMART ranker orders the union; feedback
and off-policy evaluation close the loop. ``SearchService`` is the library API."""

from . import _native  # noqa: F401  (native library load order; first)
from .config import FIELDS, SearchConfig
from .documents import ProductDoc, load_docs
from .index import REBUILD_HINT, SearchIndex
from .memory import MemoryIndex
from .pipeline import Hit, Searcher, SearchResult
from .query import Query, SearchContext, validate_query
from .service import SearchService
from .understanding import QueryUnderstanding, Slot

__all__ = [
    "FIELDS",
    "REBUILD_HINT",
    "Hit",
    "MemoryIndex",
    "ProductDoc",
    "Query",
    "QueryUnderstanding",
    "SearchConfig",
    "SearchContext",
    "SearchIndex",
    "SearchResult",
    "SearchService",
    "Searcher",
    "Slot",
    "load_docs",
    "validate_query",
]
