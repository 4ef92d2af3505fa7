"""Search settings: one frozen, self-validating config shared by the index, the strategies and the service."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["FIELDS", "SearchConfig"]

# The lexical fields, in the order their BM25 scores appear in feature vectors. "all" is every field
# concatenated: per-field scores sharpen matches, the concatenation keeps BM25's length normalisation sane
# for short fields (a brand-only match in a 3-token field would otherwise look perfect).
FIELDS: tuple[str, ...] = ("title", "brand", "category", "attributes", "text", "all")


class SearchConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    field_weights: dict[str, float] = Field(
        default_factory=lambda: {"title": 0.5, "brand": 0.25, "category": 0.25, "attributes": 0.25, "text": 0.0,
                                 "all": 1.0}
    )
    popularity_weight: float = Field(0.15, ge=0.0, description="weight of log-popularity added to BM25")
    max_query_chars: int = Field(1000, ge=16, description="longer queries are rejected with an InputError")
    max_query_tokens: int = Field(32, ge=1, description="longer queries keep their first tokens")
    max_delta: int = Field(500, ge=1, description="the lexical delta index is merged into the main one beyond this")
    journal_min_records: int = Field(
        1000, ge=0, description="single-product changes journaled before a full save of the index is due")
    journal_share: float = Field(
        0.05, ge=0.0, description="... or this share of the index's rows, if more: a full save costs time in "
        "proportion to the rows, so it is due after proportionally many changes")
    memory_refresh_seconds: float = Field(
        0.25, ge=0.0, description="feedback and index changes reach this process's memory index at most this "
        "often (one refresh serves a burst of clicks: its CPU is bounded whatever the click rate)")
    memory_half_life_days: float = Field(30.0, gt=0, description="click/purchase memory decays with this half-life")
    predicted_query_weight: float = Field(0.3, ge=0.0, description="doc2query scores relative to one click")
    default_k: int = Field(10, ge=1, le=200)
    bandit_epsilon: float = Field(0.1, ge=0.0, le=1.0)
    max_candidates: int = Field(400, ge=10)
    reload_check_seconds: float = Field(
        0.5, ge=0.0, description="how often a service looks (a few stat calls) for an index or model another "
        "process saved, and reloads it; 0 = before every request")
    dense_build_threads: int = Field(1, ge=0, description="threads for a bulk HNSW build; 1 gives the same graph "
                                     "every run, more (0 = all cores) build faster but the graph varies run to run")

    @field_validator("field_weights")
    @classmethod
    def _known_fields(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = set(value) - set(FIELDS)
        if unknown:
            raise ValueError(f"unknown fields {sorted(unknown)}; use {list(FIELDS)}")
        if any(w < 0 for w in value.values()):
            raise ValueError("field weights must be >= 0")
        return {f: float(value.get(f, 0.0)) for f in FIELDS}
