"""Small typed interfaces through which the three domains use each other, without importing internals.

    enrich ──(extracted_values table, events)──────────▶ search (structured retrieval, query understanding)
    graph  ──IntentSource──────────────────────────────▶ search (intent expansion, ranking features)
    graph  ──IntentSource.product_intents──────────────▶ enrich (supervisor context)
    search ──(search_impression / click / purchase events)▶ graph, enrich (behaviour signals)

A domain that provides one of these registers an implementation on the ``Shelfwise`` app object
(``sw.providers``); a consumer asks for it and works without it when none is registered.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["IntentHit", "IntentSource", "Providers"]


class IntentHit(BaseModel):
    """One intent the graph associates with a query, and the products that serve it."""

    model_config = ConfigDict(frozen=True)

    intent: str  # e.g. "winter camping"
    relation: str = ""  # e.g. "used_for_event"
    score: float = Field(ge=0.0)
    product_ids: tuple[str, ...] = ()
    product_types: tuple[str, ...] = ()
    edge_ids: tuple[int, ...] = ()  # for explanations: which graph edges were used


@runtime_checkable
class IntentSource(Protocol):
    """What the intent knowledge graph offers to search and enrich. Must never block on a model call:
    a cache miss returns an empty result (and may schedule a background fill)."""

    def expand(self, query: str, k: int = 10) -> list[IntentHit]:
        """Intents behind a query, best first."""
        ...

    def product_intents(self, product_id: str, k: int = 10) -> list[tuple[str, float]]:
        """(intent, score) tags of one product."""
        ...


class Providers:
    """Registry of optional cross-domain implementations, attached to the app."""

    def __init__(self) -> None:
        self.intents: IntentSource | None = None
