"""The knowledge base of learnings: a tree by category path then attribute, placed by a memory manager,
versioned, injected into worker prompts within a token budget."""

from .base import AUTOMATED_ACTORS, KBConfig, KnowledgeBase
from .manager import PlacementDecision
from .types import Evidence, LearningDraft, LearningStatus, LearningVersion, LearningView, Placement, TreeNode

__all__ = [
    "AUTOMATED_ACTORS",
    "Evidence",
    "KBConfig",
    "KnowledgeBase",
    "LearningDraft",
    "LearningStatus",
    "LearningVersion",
    "LearningView",
    "Placement",
    "PlacementDecision",
    "TreeNode",
]
