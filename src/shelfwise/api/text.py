"""Types for untrusted text in request bodies, paths and queries.

``Text`` is a ``str`` that can be stored and read back: no NUL (PostgreSQL refuses it) and no unpaired
surrogate (JSON allows ``"\\ud800"``, UTF-8 cannot carry it, so a stored one would break every later read).
Use it for every string a client sends; ``Name`` adds a length bound for ids, names and keys."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, StringConstraints

from ..store.events import text_problem

__all__ = ["MAX_DB_INT", "Name", "Text", "printable"]

MAX_DB_INT = 2**63 - 1  # the largest id any supported database stores; larger ones cannot exist


def _storable(value: str) -> str:
    problem = text_problem(value)
    if problem:
        raise ValueError(f"contains {problem}; send valid UTF-8 text without NUL or unpaired surrogates")
    return value


Text = Annotated[str, AfterValidator(_storable)]
Name = Annotated[str, StringConstraints(min_length=1, max_length=512), AfterValidator(_storable)]


def printable(value: object) -> object:
    """``value`` with unpaired surrogates spelled out (``\\ud800``): a response that echoes bad input, or an
    event stored before text was checked, must still serialise as UTF-8."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {printable(k): printable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [printable(v) for v in value]
    return value
