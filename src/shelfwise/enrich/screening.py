"""Screening worker values against what the knowledge base has confirmed, before the vote.

Small generators assign spans to the wrong attribute ("Caffeine content: 128 Count", "Flavor: Whole Bean
Coffee"); each such value starts a disagreement and a supervisor call. Three rules, all compiled from
active learnings (no model call), drop a worker's value for one attribute:

- **rejected**: an expert answered a review item with "no value" or another value, and this value was a
  worker's candidate there (the ``reject:`` examples of a rejection learning) — or has its shape: a rejected
  "128 Count" as Caffeine content also rules out "96 Count", unless a confirmed value has that shape;
- **owned elsewhere**: the value, or its number-and-unit shape ("N Count"), is confirmed for another
  attribute of the category and never for this one (in OA-Mine's train split, 1 product in 1,452 uses one
  span for two attributes);
- **shape**: every confirmed value of the attribute has a number ("12 oz", "8 M US"), or none has
  ("Decaf", "Medium Roast"), with enough support — and this value breaks the pattern.

A dropped value becomes "no value" from that worker, so the vote proceeds without it and the product's
result records why (``ProductResult.screened``). Pure functions: no I/O."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from .agreement import normalize
from .compiled import value_pattern
from .kb.scope import fold

__all__ = ["REJECT_PREFIX", "Screen", "ShapeRule", "screen_values", "shape_of", "unit_shape"]

REJECT_PREFIX = "reject:"
Shape = Literal["number", "words"]


def unit_shape(value: str) -> str | None:
    """A value's number-and-unit shape with units spelled one way ("12 Ounce", "12-oz." and "3.42 ounces"
    all give the shape of "N oz"); None for values without both a number and a word."""
    canon = normalize(fold(value))
    return value_pattern(canon) if canon else None


def shape_of(value: str) -> Shape:
    return "number" if re.search(r"\d", value) else "words"


class ShapeRule(BaseModel):
    """The shape every confirmed value of one attribute has, and the evidence for it."""

    model_config = ConfigDict(frozen=True)

    attribute: str
    shape: Shape
    confirmed: int = Field(ge=0)  # confirmed values, all of this shape
    rejected: int = Field(0, ge=0)  # rejected values of the other shape

    def admits(self, value: str) -> bool:
        return shape_of(value) == self.shape

    def reason(self) -> str:
        has = "has a number" if self.shape == "number" else "has no number"
        other = "none" if self.shape == "number" else "one"
        extra = f"; {self.rejected} rejected values had {other}" if self.rejected else ""
        return f"every confirmed {self.attribute} ({self.confirmed}) {has}{extra}"


@dataclass(frozen=True)
class Screen:
    """What one category's knowledge base says about which values an attribute can take."""

    confirmed: Mapping[str, frozenset[str]] = field(default_factory=dict)  # attribute -> folded values
    rejected: Mapping[str, frozenset[str]] = field(default_factory=dict)
    rules: Mapping[str, ShapeRule] = field(default_factory=dict)
    owners: Mapping[str, str] = field(default_factory=dict)  # folded value -> its only attribute
    # Number-and-unit shapes (unit_shape): rejected ones per attribute, and confirmed ones with
    # the only attribute that has them.
    rejected_shapes: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # attr -> pattern -> example
    shape_owners: Mapping[str, str] = field(default_factory=dict)  # pattern -> its only attribute

    @classmethod
    def learn(cls, confirmed: Mapping[str, Iterable[str]], rejected: Mapping[str, Iterable[str]] | None = None, *,
              min_confirmed: int = 3, min_rejected: int = 3) -> Screen:
        """Rules from confirmed values (the gazetteer: surface -> canonical) and rejected ones.

        A shape rule needs ``min_confirmed`` confirmed values, all of one shape; or at least one confirmed
        value without a number plus ``min_rejected`` rejected values with one (attributes like "Caffeine
        content" are rarely stated, so their evidence is mostly what they are not)."""
        conf = {a: frozenset(fold(v) for v in vals if v and v.strip()) for a, vals in confirmed.items()}
        rej = {a: frozenset(fold(v) for v in vals if v and v.strip()) for a, vals in (rejected or {}).items()}
        rules: dict[str, ShapeRule] = {}
        for attr, values in conf.items():
            shapes = {shape_of(v) for v in values}
            if len(shapes) != 1:
                continue
            shape = next(iter(shapes))
            against = sum(shape_of(v) != shape for v in rej.get(attr, ()))
            if len(values) >= min_confirmed or (shape == "words" and against >= min_rejected):
                rules[attr] = ShapeRule(attribute=attr, shape=shape, confirmed=len(values), rejected=against)
        seen: dict[str, set[str]] = defaultdict(set)
        for attr, values in conf.items():
            for v in values:
                seen[v].add(attr)
        owners = {v: next(iter(attrs)) for v, attrs in seen.items() if len(attrs) == 1}
        shapes_of = {a: {p for v in values if (p := unit_shape(v))} for a, values in conf.items()}
        rejected_shapes: dict[str, dict[str, str]] = {}
        for attr, values in rej.items():
            for v in sorted(values):
                p = unit_shape(v)
                if p and p not in shapes_of.get(attr, ()):  # a confirmed value of that shape voids it
                    rejected_shapes.setdefault(attr, {}).setdefault(p, v)
        by_shape: dict[str, set[str]] = defaultdict(set)
        for attr, pats in shapes_of.items():
            for p in pats:
                by_shape[p].add(attr)
        shape_owners = {p: next(iter(attrs)) for p, attrs in by_shape.items() if len(attrs) == 1}
        return cls(confirmed=conf, rejected=rej, rules=rules, owners=owners, rejected_shapes=rejected_shapes,
                   shape_owners=shape_owners)

    def why_not(self, attribute: str, value: str | None) -> str | None:
        """Why ``value`` cannot be the ``attribute`` (None when it may be)."""
        if value is None or not value.strip():
            return None
        key = fold(value)
        if key in self.confirmed.get(attribute, ()):
            return None  # confirmed for this attribute: nothing overrides that
        if key in self.rejected.get(attribute, ()):
            return f"an expert rejected {value!r} as {attribute}"
        owner = self.owners.get(key)
        if owner is not None and owner != attribute:
            return f"{value!r} is a confirmed {owner}"
        pattern = unit_shape(key)
        if pattern is not None:
            like = self.rejected_shapes.get(attribute, {}).get(pattern)
            if like is not None:
                return f"{value!r} has the shape of {like!r}, which an expert rejected as {attribute}"
            owner = self.shape_owners.get(pattern)
            if owner is not None and owner != attribute:
                return f"{value!r} has the shape of confirmed {owner} values"
        rule = self.rules.get(attribute)
        if rule is not None and not rule.admits(value):
            return rule.reason()
        return None


def screen_values(values: Mapping[str, str | None], screen: Screen) -> tuple[dict[str, str | None], dict[str, str]]:
    """One worker's values with the screened ones set to None, and attribute -> why for each drop."""
    kept: dict[str, str | None] = {}
    dropped: dict[str, str] = {}
    for attr, value in values.items():
        why = screen.why_not(attr, value)
        if why is None:
            kept[attr] = value
        else:
            kept[attr], dropped[attr] = None, why
    return kept, dropped
