"""Enrich: the self-learning extraction loop (workers, agreement, supervisor, review, titles, health).

    >>> from shelfwise.enrich import EnrichmentLoop
    >>> report = EnrichmentLoop(sw).run_batch(["p1", "p2"])

The knowledge base of learnings lives in ``shelfwise.enrich.kb``."""

from .agreement import AttributeDecision, normalize, vote
from .compiled import CompiledExtractor
from .review import ReviewQueue, ReviewView
from .runner import BatchReport, EnrichmentLoop, LoopConfig, ProductResult
from .schemas import builtin_schemas, install_schemas, load_schema_file
from .supervisor import Ruling, Supervisor
from .trust import TrackRecord, TrustConfig
from .workers import LLMEvaluator, LLMGenerator, Worker, WorkerOutput

__all__ = [
    "AttributeDecision",
    "BatchReport",
    "CompiledExtractor",
    "EnrichmentLoop",
    "LLMEvaluator",
    "LLMGenerator",
    "LoopConfig",
    "ProductResult",
    "ReviewQueue",
    "ReviewView",
    "Ruling",
    "Supervisor",
    "TrackRecord",
    "TrustConfig",
    "Worker",
    "WorkerOutput",
    "builtin_schemas",
    "install_schemas",
    "load_schema_file",
    "normalize",
    "vote",
]
