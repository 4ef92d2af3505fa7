"""The data that crosses between the enrichment loop and the knowledge base of learnings."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "UNTRUSTED_EVIDENCE",
    "Evidence",
    "LearningDraft",
    "LearningStatus",
    "LearningVersion",
    "LearningView",
    "Placement",
    "TreeNode",
]

LearningStatus = Literal["proposed", "active", "retired"]
PlacementAction = Literal["created", "merged", "replaced", "skipped"]

# Evidence kinds that come from people outside the team (sellers, customers): a learning carrying any of
# them is never activated automatically and never rewrites an existing learning.
UNTRUSTED_EVIDENCE: frozenset[str] = frozenset({"feedback"})


class Evidence(BaseModel):
    """Where a learning came from: a disagreement, a supervisor ruling, a feedback pattern, an expert."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["disagreement", "ruling", "feedback", "review", "expert", "synthesis"]
    product_id: str | None = None
    event_id: int | None = None
    note: str = Field("", max_length=1000)


class LearningDraft(BaseModel):
    """A proposed reusable instruction, scoped to a category path and (optionally) one attribute.

    ``examples`` are worked examples ("title fragment -> value"); ``normalize`` maps surface forms to the
    canonical value (e.g. {"k cup": "K-Cup"}) so cheap extractors and vote normalisation can use them."""

    model_config = ConfigDict(frozen=True)

    category_path: str = Field("", max_length=512)  # "" is the root: applies everywhere
    attribute: str | None = Field(None, max_length=128)  # None: applies to every attribute of the category
    text: str = Field(min_length=3, max_length=600)
    examples: list[str] = Field(default_factory=list, max_length=8)
    normalize: dict[str, str] = Field(default_factory=dict)
    critical: bool = False
    evidence: list[Evidence] = Field(default_factory=list)

    @property
    def untrusted(self) -> bool:
        return any(e.kind in UNTRUSTED_EVIDENCE for e in self.evidence)


class LearningView(BaseModel):
    """A stored learning as workers and reports see it."""

    model_config = ConfigDict(frozen=True)

    id: int
    category_path: str
    attribute: str | None
    text: str
    examples: list[str] = Field(default_factory=list)
    normalize: dict[str, str] = Field(default_factory=dict)
    status: LearningStatus
    version: int
    critical: bool = False
    # Additions (all optional, so older constructors keep working):
    space: str = "production"
    origin: str = "supervisor"  # supervisor | expert | feedback | synthesis | promote | ...
    support: int = 1  # how many drafts were merged into it
    times_injected: int = 0
    disagreements_after: int = 0  # outcomes where workers still disagreed with it in the prompt
    agreements_after: int = 0
    evidence: list[Evidence] = Field(default_factory=list)
    updated_at: datetime | None = None

    def prompt_text(self) -> str:
        """The compact form injected into worker prompts: rule, worked examples, normalisation."""
        scope = f"[{self.category_path or 'all'}{' / ' + self.attribute if self.attribute else ''}]"
        parts = [f"{scope} {self.text}"]
        if self.examples:
            parts.append("e.g. " + "; ".join(self.examples[:3]))
        if self.normalize:
            parts.append("normalise: " + ", ".join(f"{k!r}->{v!r}" for k, v in list(self.normalize.items())[:6]))
        return " ".join(parts)


class LearningVersion(BaseModel):
    """One entry of a learning's history: a full snapshot plus what changed, why and by whom."""

    model_config = ConfigDict(frozen=True)

    learning_id: int
    version: int
    action: str
    reason: str
    actor: str
    category_path: str
    attribute: str | None
    text: str
    examples: list[str] = Field(default_factory=list)
    normalize: dict[str, str] = Field(default_factory=dict)
    status: LearningStatus
    critical: bool = False
    evidence: list[Evidence] = Field(default_factory=list)
    created_at: datetime | None = None


class Placement(BaseModel):
    """What the memory manager did with a draft."""

    model_config = ConfigDict(frozen=True)

    learning_id: int | None
    action: PlacementAction
    reason: str = ""
    decided_by: Literal["guard", "llm", "default"] = "default"
    path: str = ""


class TreeNode(BaseModel):
    """One category node of the knowledge tree with its learnings (grouped by attribute) and children."""

    name: str
    path: str
    learnings: list[LearningView] = Field(default_factory=list)
    children: list[TreeNode] = Field(default_factory=list)

    def count(self) -> int:
        return len(self.learnings) + sum(c.count() for c in self.children)
