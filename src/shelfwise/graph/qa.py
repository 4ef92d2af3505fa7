"""Answering "why were A and B bought together?" multiple-choice questions (IntentionQA task 1) from the
knowledge the graph holds for the pair, and the paired statistics to compare two answerers.

An option such as "because they both are capable of keeping him warm." is cut into (relation, tail)
("capable_of", "keeping him warm") and matched against the pair's edges by embedding similarity. The
templates' shared wording ("they both are capable of") is stripped first: left in, it dominates the
similarity of short phrases and makes an option match every edge of the same relation."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import binomtest

__all__ = ["MATCHERS", "Knowledge", "edge_sentence", "mcnemar_exact", "option_to_tail", "paired_difference",
           "pick_option", "wilson_interval"]

# IntentionQA's assertion templates (FolkScope / ASER relations) → the graph's relation names.
_TEMPLATES = [
    (r"^they (both are|are both) capable of (being )?", "capable_of"),
    (r"^they (both are|are both) used (for|to|as) ", "used_for_function"),
    (r"^they could both be used (for|to) ", "used_for_function"),
    (r"^they could both be used (as) ", "used_as"),
    (r"^they could both be used (in|on|with) ", "used_with"),
    (r"^they (both are|are both) (a type|a kind|a manner) of ", "is_a"),
    (r"^they (both are|are both) defined as ", "is_a"),
    (r"^they (both are|are both) related to (the topic of )?", "other"),
    (r"^they both have a property of ", "other"),
    (r"^they could both be found (in|at|on) ", "used_in_location"),
    (r"^they could both be worn (as|on|by|in|for|with) ", "used_in_body"),
    (r"^they could both be worn ", "used_in_body"),
    (r"^(as a result, )?(the person|he|she|he/she) (wants?|wanted) (to )?", "x_want"),
    (r"^(the person|he|she|he/she) (thought|was looking for|was convinced) ", "x_want"),
]


def option_to_tail(option: str) -> tuple[str, str]:
    """("because they both are a type of USB extension cable.") → ("is_a", "usb extension cable")."""
    text = re.sub(r"^(because|as a result,)\s+", "", option.strip().rstrip("."), flags=re.IGNORECASE)
    for pattern, rel in _TEMPLATES:
        if re.match(pattern, text, flags=re.IGNORECASE):
            return rel, re.sub(pattern, "", text, flags=re.IGNORECASE).strip('" ').lower()
    return "other", text.strip('" ').lower()


def edge_sentence(relation: str, tail: str) -> str:
    return f"{relation.replace('_', ' ').replace('x ', 'the person ')} {tail}"


@dataclass
class Knowledge:
    """What the graph knows about one pair: the edges the cascade kept, every candidate generated for it
    (kept or dropped), and the intents of its two products from *other* pairs' edges."""

    kept: list[tuple[str, str]]
    generated: list[tuple[str, str]]
    product_intents: list[tuple[str, str]]
    head: str = ""  # the pair's node text (its product titles), for matchers that use the whole triple


# name → (knowledge sources tried in order until one is non-empty, text form, relation bonus, add the head).
# With the head, an option scores cos(option, head) + max cos(option, tail): the whole <head, relation, tail>.
MATCHERS: dict[str, tuple[tuple[str, ...], str, float, bool]] = {
    "sentence_kept": (("kept",), "sentence", 0.0, False),  # the first session's matcher
    "tail_kept": (("kept",), "tail", 0.0, False),
    "tail_rel_kept": (("kept",), "tail", 0.1, False),
    "tail_kept_products": (("kept", "product_intents"), "tail", 0.0, False),
    "tail_kept_generated": (("kept", "generated"), "tail", 0.0, False),
    "tail_rel_kept_generated": (("kept", "generated"), "tail", 0.1, False),
    "tail_generated": (("generated",), "tail", 0.0, False),  # ignores the cascade: does refinement help?
    "head_tail_kept_generated": (("kept", "generated"), "tail", 0.0, True),
}


def _texts(items: Sequence[tuple[str, str]], form: str) -> list[str]:
    return [edge_sentence(r, t) if form == "sentence" else t for r, t in items]


def pick_option(embedder: Any, options: dict[str, str], know: Knowledge, matcher: str) -> str | None:
    """The option letter whose text is closest to the pair's knowledge (max cosine over its items, plus a
    bonus when the relation matches), or None when the graph knows nothing about the pair."""
    sources, form, bonus, with_head = MATCHERS[matcher]
    items = next((getattr(know, s) for s in sources if getattr(know, s)), [])
    if not items:
        return None
    letters = list(options)
    opts = [option_to_tail(options[k]) for k in letters]
    kv = np.asarray(embedder.embed(_texts(items, form)), dtype=np.float32)
    ov = np.asarray(embedder.embed(_texts(opts, form)), dtype=np.float32)
    sim = ov @ kv.T
    if bonus:
        same = np.array([[o[0] == r and o[0] != "other" for r, _ in items] for o in opts], dtype=np.float32)
        sim = sim + bonus * same
    score = sim.max(axis=1)
    if with_head and know.head:
        score = score + (ov @ np.asarray(embedder.embed([know.head]), dtype=np.float32).T)[:, 0]
    return letters[int(np.argmax(score))]


# -- statistics ------------------------------------------------------------------------------------------
def wilson_interval(correct: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion (better than the normal one at small n), from scipy."""
    if n == 0:
        return (0.0, 0.0)
    ci = binomtest(correct, n).proportion_ci(confidence_level=confidence, method="wilson")
    return (float(ci.low), float(ci.high))


def mcnemar_exact(a_ok: Sequence[bool], b_ok: Sequence[bool]) -> dict[str, float]:
    """Exact (binomial) two-sided McNemar test on paired right/wrong answers of answerers a and b."""
    if len(a_ok) != len(b_ok):
        raise ValueError("paired answers must be of equal length")
    only_a = sum(1 for x, y in zip(a_ok, b_ok, strict=True) if x and not y)
    only_b = sum(1 for x, y in zip(a_ok, b_ok, strict=True) if y and not x)
    n = only_a + only_b
    # The exact McNemar test is a two-sided binomial test of the discordant pairs against 1/2.
    p = 1.0 if n == 0 else float(binomtest(only_a, n, 0.5).pvalue)
    return {"only_a": only_a, "only_b": only_b, "p_value": p}


def paired_difference(a_ok: Sequence[bool], b_ok: Sequence[bool], z: float = 1.96) -> tuple[float, float, float]:
    """Accuracy(a) − accuracy(b) with a 95 % Wald interval for paired proportions."""
    n = len(a_ok)
    if n == 0:
        return (0.0, 0.0, 0.0)
    t = mcnemar_exact(a_ok, b_ok)
    b, c = t["only_a"], t["only_b"]
    d = (b - c) / n
    se = math.sqrt(max(b + c - (b - c) ** 2 / n, 0.0)) / n
    return (d, d - z * se, d + z * se)
