"""Agreement per attribute: normalise every worker's value (case, spacing, units, synonyms the knowledge
base knows), vote, and send single-source values to the critical evaluator. Pure functions: no I/O."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["UNITS", "AttributeDecision", "Candidate", "normalize", "shared_values", "vote"]

# Unit spellings folded to one token, so "12 Ounce", "12oz" and "12 oz." vote together.
UNITS = {
    "ounces": "oz", "ounce": "oz", "oz.": "oz", "oz": "oz", "fluid ounces": "fl oz", "fluid ounce": "fl oz",
    "fl. oz.": "fl oz", "fl. oz": "fl oz", "fl oz.": "fl oz", "fl.oz": "fl oz", "fl oz": "fl oz",
    "pounds": "lb", "pound": "lb", "lbs": "lb", "lbs.": "lb", "lb.": "lb", "lb": "lb",
    "grams": "g", "gram": "g", "gr": "g", "g": "g", "kilograms": "kg", "kg": "kg",
    "milliliters": "ml", "millilitres": "ml", "ml": "ml", "liters": "l", "litres": "l", "liter": "l", "l": "l",
    "count": "ct", "counts": "ct", "ct": "ct", "ct.": "ct", "pieces": "pc", "piece": "pc", "pcs": "pc", "pc": "pc",
    "packs": "pack", "pack": "pack", "pk": "pack",
}
_UNIT_RE = re.compile(
    r"(\d+(?:[.,]\d+)?)\s*(" + "|".join(sorted((re.escape(u) for u in UNITS), key=len, reverse=True)) + r")(?![a-z])"
)


def _fold(text: str) -> str:
    text = text.lower().replace("’", "'").replace("‘", "'")
    text = re.sub(r"\s+", " ", text).strip(" .,;:-/|")
    return text


_FOLDED: dict[int, tuple[Mapping[str, str], dict[str, str]]] = {}


def _folded(synonyms: Mapping[str, str]) -> dict[str, str]:
    """The synonym map with folded keys, computed once per map object (a batch votes with the same few maps
    thousands of times, and a gazetteer grows to hundreds of entries)."""
    hit = _FOLDED.get(id(synonyms))
    if hit is not None and hit[0] is synonyms:
        return hit[1]
    if len(_FOLDED) > 512:
        _FOLDED.clear()
    folded = {_fold(k): v for k, v in synonyms.items()}
    _FOLDED[id(synonyms)] = (synonyms, folded)
    return folded


def normalize(value: str | None, synonyms: Mapping[str, str] | None = None) -> str | None:
    """A comparison key for a value: lower case, single spaces, canonical units, known synonyms applied.
    ``None`` and empty strings (and "n/a"-like fillers) are ``None``."""
    if value is None:
        return None
    text = _fold(str(value))
    if text in ("", "n/a", "na", "none", "null", "unknown", "not specified", "-"):
        return None
    if synonyms:
        folded = _folded(synonyms)
        if text in folded:
            text = _fold(folded[text])
    text = _UNIT_RE.sub(lambda m: f"{m.group(1).replace(',', '.')} {UNITS[m.group(2)]}", text)
    return text


class Candidate(BaseModel):
    """One worker's value for one attribute."""

    model_config = ConfigDict(frozen=True)

    worker: str
    value: str | None
    key: str | None  # the normalised comparison key


class AttributeDecision(BaseModel):
    """What the vote decided for one attribute; ``needs_check`` values go to the evaluator."""

    model_config = ConfigDict(frozen=True)

    attribute: str
    value: str | None = None
    status: str  # empty | agreed | check | conflict
    candidates: list[Candidate] = Field(default_factory=list)
    reasons: list[str] = Field(default_factory=list)

    @property
    def needs_check(self) -> bool:
        return self.status == "check"


def vote(
    attribute: str,
    values: Sequence[tuple[str, str | None]],
    *,
    synonyms: Mapping[str, str] | None = None,
    threshold: float = 1.0,
    preferred: Sequence[str] = (),
    abstaining: Sequence[str] = (),
) -> AttributeDecision:
    """Decide one attribute from ``(worker, value)`` pairs.

    - nobody found a value → ``empty``;
    - two or more different values (after normalisation) → ``conflict`` (a disagreement);
    - one value given by ≥ 2 workers with support ≥ ``threshold`` → ``agreed`` (no evaluator needed);
    - otherwise (some workers abstained) → ``check``: the evaluator decides.
    ``preferred`` lists workers whose spelling wins when keys tie (the compiled extractor copies the
    listing's own spelling). ``abstaining`` lists workers whose silence is no vote: the compiled extractor
    only recognises values the knowledge base already holds, so its ``None`` says nothing about the listing, and
    a different value it found does not overrule two agreeing readers of the listing."""
    # model_construct: the fields are built right here, and validation per attribute per product adds up.
    cands = [Candidate.model_construct(worker=w, value=v, key=normalize(v, synonyms)) for w, v in values]
    present = [c for c in cands if c.key is not None]
    readers = {c.key for c in present if c.worker not in abstaining}
    if len(readers) == 1 and sum(c.worker not in abstaining for c in present) >= 2:
        # The workers that read the listing agree: another known value the lookup found in the text is no veto
        # (OA-Mine runs: where it differed from two agreeing generators it was never the only right one).
        present = [c for c in present if c.key in readers]
    if not present:
        return AttributeDecision.model_construct(attribute=attribute, value=None, status="empty", candidates=cands,
                                                 reasons=[])
    counts = Counter(c.key for c in present)
    if len(counts) > 1:
        shown = ", ".join(f"{c.worker}={c.value!r}" for c in present)
        return AttributeDecision(attribute=attribute, status="conflict", candidates=cands,
                                 reasons=[f"workers gave different values: {shown}"])
    key = next(iter(counts))
    spelled = min(present, key=lambda c: (c.worker not in preferred, preferred.index(c.worker)
                                          if c.worker in preferred else 0)).value
    kept = {id(c) for c in present}
    voters = [c for c in cands if id(c) in kept or (c.key is None and c.worker not in abstaining)]
    support = counts[key] / max(1, len(voters))
    # One worker alone never agrees with itself: a single-source value always goes to the evaluator.
    status = "agreed" if counts[key] >= 2 and support >= threshold else "check"
    return AttributeDecision(attribute=attribute, value=spelled, status=status, candidates=cands)


def shared_values(values: Mapping[str, str | None]) -> set[str]:
    """The attributes whose value (normalised) is also another attribute's value in the same listing: one
    span of a listing is at most one attribute, so such values are a misreading of all but one of them."""
    by_key: dict[str, list[str]] = {}
    for attribute, value in values.items():
        key = normalize(value)
        if key is not None:
            by_key.setdefault(key, []).append(attribute)
    return {a for attrs in by_key.values() if len(attrs) > 1 for a in attrs}
