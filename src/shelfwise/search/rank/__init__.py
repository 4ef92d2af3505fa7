"""Ranking: features, a LambdaMART ranker, position-debiased click labels and a click simulator."""

from .clicks import ClickSimulator, Interaction, ipw_labels, position_propensity
from .features import FEATURE_NAMES, feature_matrix
from .ltr import GAINS, LTRRanker

__all__ = [
    "FEATURE_NAMES",
    "GAINS",
    "ClickSimulator",
    "Interaction",
    "LTRRanker",
    "feature_matrix",
    "ipw_labels",
    "position_propensity",
]
