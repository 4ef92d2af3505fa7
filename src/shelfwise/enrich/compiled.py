"""The compiled extractor: a worker built from the knowledge base, no model call.

It reads, per category and attribute, the gazetteer (``kb.normalizers``: surface form -> canonical value,
written by rulings and reviews) and value patterns (learning examples ``pattern: <regex>``), and finds
them in the title. Longest match wins and a span of the title feeds at most one attribute, so "Women's"
cannot be both Gender and part of a Brand. Cost: microseconds per product; its recall grows with the KB."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence

from ..store.catalog import AttributeSchema, Listing
from .kb.types import LearningView
from .workers import WorkerOutput

__all__ = ["PATTERN_PREFIX", "CompiledExtractor", "value_pattern"]

PATTERN_PREFIX = "pattern:"
Gazetteer = Callable[[str, str], dict[str, str]]
Patterns = Callable[[str, str], list[str]]


def value_pattern(value: str) -> str | None:
    """A reusable regex for values with numbers: "14 M US" -> r"\\d+(?:\\.\\d+)? M US". None otherwise."""
    if not re.search(r"\d", value) or not re.search(r"[A-Za-z]", value):
        return None
    parts = re.split(r"(\d+(?:[.,]\d+)?)", value)
    out = []
    for part in parts:
        if re.fullmatch(r"\d+(?:[.,]\d+)?", part):
            out.append(r"\d+(?:[.,]\d+)?")
        elif part:
            out.extend(r"\s*" if t.isspace() else re.escape(t) for t in re.split(r"(\s+)", part) if t)
    return "".join(out)


def _bounded(surface: str) -> re.Pattern[str]:
    # Knowledge-base keys are folded ("k cup" for "K-Cup"), so a space matches any run of space, - or _.
    body = r"[\s\-_]+".join(re.escape(t) for t in surface.replace("-", " ").split())
    return re.compile(r"(?<![\w])" + body + r"(?![\w])", re.IGNORECASE)


def _loose(text: str) -> str:
    return " ".join(text.lower().replace("-", " ").replace("_", " ").split())


class CompiledExtractor:
    """Gazetteer + pattern matcher over the knowledge base (``name="kb"``)."""

    name = "kb"
    prompt_version = "compiled-v1"

    def __init__(self, gazetteer: Gazetteer, patterns: Patterns | None = None, *, min_chars: int = 2) -> None:
        self.gazetteer, self.patterns, self.min_chars = gazetteer, patterns, min_chars

    def extract(self, listing: Listing, schema: AttributeSchema, learnings: Sequence[LearningView]) -> WorkerOutput:
        start = time.perf_counter()
        category = listing.category_path or schema.category_path
        title = listing.title
        found: list[tuple[int, int, int, str, str]] = []  # (-length, start, end, attribute, value)
        for spec in schema.attributes:
            for surface, canonical in self.gazetteer(category, spec.name).items():
                if len(surface) < self.min_chars:
                    continue
                for m in _bounded(surface).finditer(title):
                    value = m.group(0) if _loose(m.group(0)) == _loose(canonical) else canonical
                    found.append((-(m.end() - m.start()), m.start(), m.end(), spec.name, value))
            for rx in (self.patterns(category, spec.name) if self.patterns else []):
                try:
                    compiled = re.compile(r"(?<![\w.])" + rx + r"(?![\w])", re.IGNORECASE)
                except re.error:
                    continue  # a bad pattern in the KB must not stop extraction
                for m in compiled.finditer(title):
                    found.append((-(m.end() - m.start()), m.start(), m.end(), spec.name, m.group(0)))
        values: dict[str, str | None] = {a.name: None for a in schema.attributes}
        taken: list[tuple[int, int]] = []
        for _neg, s, e, attr, value in sorted(found):
            if values[attr] is not None or any(s < te and ts < e for ts, te in taken):
                continue
            values[attr] = value
            taken.append((s, e))
        return WorkerOutput(worker=self.name, model="compiled-kb", prompt_version=self.prompt_version,
                            values=values, seconds=time.perf_counter() - start)
