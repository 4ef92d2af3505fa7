"""The data that crosses between the enrichment loop and the knowledge base of learnings."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["LearningDraft", "LearningView", "Evidence", "LearningStatus"]

LearningStatus = Literal["proposed", "active", "retired"]


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
