"""Understand: the intent knowledge graph built from shopping behaviour (SPEC §2).

    behaviour pairs → sampling → generation (graph.generator) → refinement cascade → edges
    annotation queue → classifier → scores on edges;  serving: feature store + two-tier cache → IntentSource

``register(sw)`` sets ``sw.providers.intents`` so search and enrich can use the graph without importing it.
"""

from .annotate import QUESTIONS, AnnotationQueue, Answers
from .behaviour import (
    BehaviourPair,
    ProductInfo,
    catalog_products,
    load_esci,
    load_intentionqa,
    pairs_from_events,
    pairs_from_file,
    split_pairs,
)
from .cascade import CascadeConfig, StageReport, run_cascade
from .classifier import IntentClassifier, load_classifier
from .navigate import navigation_tree, recommend
from .pipeline import BuildConfig, BuildReport, build_graph, refine
from .relations import SEED_RELATIONS
from .sampling import SamplingConfig, sample_pairs
from .serving import FeatureStore, GraphIntentSource, IntentCache, register
from .store import GraphStore

__all__ = [
    "QUESTIONS",
    "SEED_RELATIONS",
    "AnnotationQueue",
    "Answers",
    "BehaviourPair",
    "BuildConfig",
    "BuildReport",
    "CascadeConfig",
    "FeatureStore",
    "GraphIntentSource",
    "GraphStore",
    "IntentCache",
    "IntentClassifier",
    "ProductInfo",
    "SamplingConfig",
    "StageReport",
    "build_graph",
    "catalog_products",
    "load_classifier",
    "load_esci",
    "load_intentionqa",
    "navigation_tree",
    "pairs_from_events",
    "pairs_from_file",
    "recommend",
    "refine",
    "register",
    "run_cascade",
    "sample_pairs",
    "split_pairs",
]
