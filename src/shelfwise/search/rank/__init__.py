"""Ranking: features, a LambdaMART ranker, an optional cross-encoder second stage, position-debiased click
labels and a click simulator."""

from .clicks import ClickSimulator, Interaction, ipw_labels, position_propensity
from .features import FEATURE_NAMES, feature_matrix
from .ltr import GAINS, LTRRanker
from .second_stage import PairScorer, SecondStage, pair_text

__all__ = [
    "FEATURE_NAMES",
    "GAINS",
    "ClickSimulator",
    "Interaction",
    "LTRRanker",
    "PairScorer",
    "SecondStage",
    "feature_matrix",
    "ipw_labels",
    "pair_text",
    "position_propensity",
]
