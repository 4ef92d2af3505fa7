"""Learning to retrieve: a contextual bandit over strategy mixes, and off-policy evaluation."""

from .arms import DEFAULT_ARMS, STRATEGY_NAMES, Arm, query_context
from .linucb import ContextualBandit, context_vector
from .ope import doubly_robust, importance_weights, ips, snips

__all__ = [
    "DEFAULT_ARMS",
    "STRATEGY_NAMES",
    "Arm",
    "ContextualBandit",
    "context_vector",
    "doubly_robust",
    "importance_weights",
    "ips",
    "query_context",
    "snips",
]
