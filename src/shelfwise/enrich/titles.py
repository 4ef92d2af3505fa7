"""Search-friendly titles from the extracted attributes, under the same disagreement loop (attribute
"title"): the composed title is checked by the evaluator like any single-source value, and deterministic
guards flag invented facts (words that appear neither in the listing nor in the values) and length."""

from __future__ import annotations

from collections.abc import Mapping

from ..store.catalog import AttributeSchema, Listing
from .agreement import AttributeDecision, Candidate

__all__ = ["MAX_TITLE_CHARS", "TITLE_ORDER", "compose_title", "title_decision", "title_problems"]

MAX_TITLE_CHARS = 120
# Brand first, then what it is, then distinguishing facts, then quantity: how shoppers scan a result list.
TITLE_ORDER = ("Brand", "Sub brand", "Model name", "Product type", "Tea variety", "Supplement type", "Shoe type",
               "Mask type", "Roast type", "Flavor", "Scent", "Gender", "Color", "Item form", "Size", "Capacity",
               "Net content", "Volume", "Pack size")


def compose_title(values: Mapping[str, str | None], schema: AttributeSchema, max_chars: int = MAX_TITLE_CHARS) -> str:
    order = [n for n in TITLE_ORDER if n in values] + [a.name for a in schema.attributes if a.name not in TITLE_ORDER]
    parts: list[str] = []
    for name in order:
        v = values.get(name)
        if v and v.lower() not in " ".join(parts).lower():
            candidate = ", ".join([" ".join(parts[:1] + parts[1:2]), *parts[2:], v]) if parts else v
            if len(candidate) > max_chars:
                break
            parts.append(v)
    if len(parts) <= 2:
        return " ".join(parts)
    return " ".join(parts[:2]) + ", " + ", ".join(parts[2:])


def title_problems(title: str, listing: Listing, values: Mapping[str, str | None],
                   max_chars: int = MAX_TITLE_CHARS) -> list[str]:
    problems = []
    if not title:
        problems.append("empty title")
    if len(title) > max_chars:
        problems.append(f"longer than {max_chars} characters")
    known = " ".join([listing.title, listing.description, *listing.bullets, *(v or "" for v in values.values())]).lower()
    invented = [w for w in title.replace(",", " ").split() if w.lower() not in known]
    if invented:
        problems.append(f"words not in the listing: {', '.join(invented[:5])}")
    return problems


def title_decision(listing: Listing, schema: AttributeSchema, settled: Mapping[str, str | None]) -> AttributeDecision:
    """A 'title' decision from settled values: guards failing → conflict (supervisor); else evaluator check."""
    values = {a: v for a, v in settled.items() if v and a != "title"}
    title = compose_title(values, schema)
    cand = [Candidate(worker="titles", value=title or None, key=title.lower() or None)]
    problems = title_problems(title, listing, values)
    if problems:
        return AttributeDecision(attribute="title", value=title or None, status="conflict", candidates=cand,
                                 reasons=problems)
    return AttributeDecision(attribute="title", value=title, status="check", candidates=cand)
