"""Turning a settled value into learnings the next workers can use:

- a *gazetteer* learning per (category, attribute) — fixed text, so every new value merges into the same
  learning by the knowledge base's duplicate guard and its normalisation map grows (no LLM call needed);
- a *pattern* learning for values with numbers ("14 M US" -> a regex), same merging;
- the supervisor's own prose learning, with a worked example, when it wrote one;
- a *worked example* per settled product (category-wide, fixed text, so they merge into one learning that
  keeps the newest 8): the listing and every value, which small generators read as few-shot examples;
- a *rejection* learning per (category, attribute) for the number-and-unit values a person's review answer
  rules out (fixed text, ``reject:`` examples), which the screen applies before the vote (screening.py).

Titles, values and category names are seller text that other products' prompts will show: they are stored
on one line and cut (``one_line``), and the workers render them only inside quoted data blocks."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from .compiled import PATTERN_PREFIX, value_pattern
from .kb.scope import one_line
from .kb.types import Evidence, LearningDraft, LearningView
from .screening import REJECT_PREFIX

__all__ = ["WORKED_PREFIX", "format_worked", "gazetteer_text", "is_worked", "parse_worked", "pattern_text",
           "rejection_draft", "rejection_text", "value_drafts", "worked_draft", "worked_text"]

_WORDS = re.compile(r"[a-z0-9]+")

WORKED_PREFIX = "worked:"
WORKED_TITLE_CHARS = 120


def _scope(category_path: str) -> str:
    return one_line(category_path.split(">")[-1], 60) or "all categories"


def gazetteer_text(category_path: str, attribute: str) -> str:
    return (f"In {_scope(category_path)}, these {attribute} values were confirmed; when one occurs in a listing, "
            f"it is the {attribute}, copied as written.")


def pattern_text(category_path: str, attribute: str) -> str:
    return f"In {_scope(category_path)}, {attribute} values follow these shapes (number + unit words)."


def value_drafts(category_path: str, attribute: str, value: str, title: str, *, text: str | None = None,
                 evidence: Evidence | None = None) -> list[LearningDraft]:
    """Learnings for one settled value; none when the value is not a span of the title (a learning must be
    checkable against the listing that produced it)."""
    at = title.lower().find(value.lower()) if value.strip() else -1
    if at < 0:
        return []
    surface = one_line(title[at: at + len(value)])
    ev = [evidence] if evidence else []
    example = f"{one_line(title, 70)} -> {attribute}: {surface}"
    drafts = [LearningDraft(category_path=category_path, attribute=attribute,
                            text=gazetteer_text(category_path, attribute), examples=[example],
                            normalize={surface: surface}, evidence=ev)]
    pattern = value_pattern(surface)
    if pattern:
        drafts.append(LearningDraft(category_path=category_path, attribute=attribute,
                                    text=pattern_text(category_path, attribute),
                                    examples=[f"{PATTERN_PREFIX} {pattern}"], evidence=ev))
    if text and len(text.strip()) >= 12:
        drafts.append(LearningDraft(category_path=category_path, attribute=attribute, text=one_line(text, 600),
                                    examples=[example], evidence=ev))
    return drafts


def rejection_text(category_path: str, attribute: str) -> str:
    return f"In {_scope(category_path)}, an expert confirmed that these values are not the {attribute}."


def rejection_draft(category_path: str, attribute: str, answer: str | None,
                    candidates: Sequence[Mapping[str, Any]], *, evidence: Evidence | None = None) -> LearningDraft | None:
    """The candidates an expert's answer rules out, as a learning (``reject:`` examples, screening.py).

    A candidate is ruled out when the answer is "no value", or when it shares no word with the answer: a
    shorter or longer span of the right value ("Medium" for "Medium Roast") is a convention question, not
    a wrong value, and stays allowed. Only number-and-unit values ("128 Count") are kept: their shape
    generalises to other listings, while a word value ruled out for one listing ("Organic" as Specialty
    where the label is "Gourmet") may well be right for the next; words are screened by ownership instead."""
    words = set(_WORDS.findall(answer.lower())) if answer else set()
    out: list[str] = []
    for c in candidates:
        v = (c.get("value") or "").strip() if isinstance(c, Mapping) else ""
        if (v and c.get("worker") != "kb" and value_pattern(v) and not words & set(_WORDS.findall(v.lower()))
                and v not in out):
            out.append(v)
    if not out:
        return None
    return LearningDraft(category_path=category_path, attribute=attribute,
                         text=rejection_text(category_path, attribute),
                         examples=[f"{REJECT_PREFIX} {v}" for v in out], evidence=[evidence] if evidence else [])


def worked_text(category_path: str) -> str:
    return (f"Worked examples in {_scope(category_path)}: each listing with every attribute value it states, "
            "copied as written.")


def format_worked(title: str, values: dict[str, str]) -> str:
    pairs = "; ".join(f"{a}: {one_line(v)}" for a, v in values.items())
    return f"{WORKED_PREFIX} {one_line(title, WORKED_TITLE_CHARS)} => {pairs}"


def is_worked(learning: LearningView) -> bool:
    """Whether a learning holds worked examples (rendered as few-shot pairs, not as a prose line)."""
    return any(e.startswith(WORKED_PREFIX) for e in learning.examples)


def parse_worked(example: str) -> tuple[str, dict[str, str]] | None:
    """(title, values) of a worked example, or None for any other example."""
    if not example.startswith(WORKED_PREFIX) or " => " not in example:
        return None
    title, pairs = example[len(WORKED_PREFIX):].strip().rsplit(" => ", 1)
    values = dict(p.split(": ", 1) for p in pairs.split("; ") if ": " in p)
    return title, values


def worked_draft(category_path: str, title: str, values: dict[str, str | None], *,
                 evidence: Evidence | None = None) -> LearningDraft | None:
    """A worked example from a settled product; only values that are spans of the title are shown."""
    shown = {a: v for a, v in values.items() if a != "title" and v and v.lower() in title.lower()}
    if not shown:
        return None
    return LearningDraft(category_path=category_path, attribute=None, text=worked_text(category_path),
                         examples=[format_worked(title, shown)], evidence=[evidence] if evidence else [])
