"""Arms (strategy mixes: which strategies run and how many candidates each contributes) and the
context features a bandit sees for one query."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from ..query import Query

__all__ = ["DEFAULT_ARMS", "STRATEGY_NAMES", "Arm", "query_context"]

STRATEGY_NAMES = ("lexical", "structured", "dense", "memory", "intent")


class Arm(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    mix: dict[str, int] = Field(description="strategy name -> number of candidates drawn from it")

    def features(self) -> dict[str, float]:
        return {s: self.mix.get(s, 0) / 100.0 for s in STRATEGY_NAMES}


DEFAULT_ARMS: tuple[Arm, ...] = (
    Arm(name="lexical", mix={"lexical": 100}),
    Arm(name="dense", mix={"dense": 100}),
    Arm(name="lexical+dense", mix={"lexical": 60, "dense": 60}),
    Arm(name="hybrid", mix={"lexical": 60, "dense": 60, "structured": 40}),
    Arm(name="memory-led", mix={"memory": 40, "lexical": 50, "dense": 40}),
    Arm(name="broad", mix={"lexical": 100, "dense": 100, "structured": 60, "memory": 40, "intent": 40}),
)


def query_context(query: Query) -> dict[str, Any]:
    """Query length and type, understood slots, time, user segment and the memory's record for this query.
    Numbers are features as they are; strings become one-hot features."""
    now = query.context.now
    slots = query.slots
    fields = sorted({s.field for s in slots})
    memory_total, memory_seen = query.memory
    return {
        "n_tokens": float(len(query.tokens)),
        "log_chars": math.log1p(len(query.text)),
        "has_digit": float(any(ch.isdigit() for ch in query.text)),
        "n_slots": float(len(slots)),
        "slot_weight": float(sum(s.weight for s in slots[:3])),
        "slot_fields": " ".join(fields) or "none",
        "memory_hit": float(memory_seen.max() > 0) if len(memory_seen) else 0.0,
        "predicted_hit": float(memory_total.max() > 0) if len(memory_total) else 0.0,
        "intent_hit": float(bool(query.intent_source is not None and query.intent_hits)),
        "daypart": ("night", "morning", "afternoon", "evening")[now.hour // 6],
        "weekend": float(now.weekday() >= 5),
        "segment": query.context.user_segment or "anon",
    }
