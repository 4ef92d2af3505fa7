"""Keeping prompts inside a token budget, and keeping untrusted text clearly marked as data."""

from __future__ import annotations

import logging
from collections.abc import Callable

__all__ = ["fit_to_budget", "quote_untrusted"]

log = logging.getLogger("shelfwise.llm")


def _estimate(text: str) -> int:
    return max(1, len(text) // 4)


def fit_to_budget(
    text: str, max_tokens: int, *, count: Callable[[str], int] = _estimate, what: str = "text"
) -> tuple[str, bool]:
    """Cut ``text`` to about ``max_tokens`` tokens (at a word boundary) with a warning; never raises."""
    if count(text) <= max_tokens:
        return text, False
    lo, hi = 0, len(text)
    while lo < hi:  # binary search on characters: tokenizers are monotone enough for this
        mid = (lo + hi + 1) // 2
        if count(text[:mid]) <= max_tokens:
            lo = mid
        else:
            hi = mid - 1
    cut = text[:lo]
    space = cut.rfind(" ")
    if space > lo * 0.8:
        cut = cut[:space]
    log.warning("%s cut from %d to %d characters to fit a %d-token budget", what, len(text), len(cut), max_tokens)
    return cut + " …", True


def quote_untrusted(text: str, label: str = "LISTING") -> str:
    """Wrap seller/customer text as inert data. Delimiter look-alikes inside it are defused, so the text
    cannot close the block and speak as the system."""
    cleaned = text.replace(f"<<<{label}", "<< <").replace(f"{label}>>>", "> >>").replace("<<<", "< <<")
    return f"<<<{label}\n{cleaned}\n{label}>>>"
