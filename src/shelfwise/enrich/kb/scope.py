"""Small pure helpers: canonical category paths, cheap token counts, folding, similarity."""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from ...errors import InputError

__all__ = [
    "SEP",
    "ancestors",
    "canonical_path",
    "cosine",
    "depth",
    "estimate_tokens",
    "fold",
    "is_ancestor",
    "normalize_conflicts",
    "one_line",
    "path_key",
    "token_jaccard",
]

SEP = " > "
_WORD = re.compile(r"[a-z0-9]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def one_line(text: str, max_chars: int | None = None) -> str:
    """Seller text as one line: control characters and newlines become spaces, runs of space one space, cut
    to ``max_chars``. Text from listings (titles, values, category paths) ends up in learnings that other
    products' prompts show; on one line it cannot start a line of its own there and pose as an instruction."""
    text = " ".join(_CONTROL.sub(" ", text).split())
    return text if max_chars is None or len(text) <= max_chars else text[:max_chars].rstrip()


def canonical_path(path: str | None) -> str:
    """'Grocery>Coffee ' -> 'Grocery > Coffee'; '' is the root. Empty segments are a user error."""
    if not path or not path.strip():
        return ""
    parts = [one_line(p) for p in path.split(">")]
    if any(not p for p in parts):
        raise InputError(f"category path {path!r} has an empty segment", fix="write it as 'Parent > Child'")
    return SEP.join(parts)


def path_key(path: str | None) -> str:
    return canonical_path(path).lower()


def ancestors(path: str | None) -> list[str]:
    """The keys of every node from the root to ``path`` inclusive: ['', 'grocery', 'grocery > coffee']."""
    key = path_key(path)
    if not key:
        return [""]
    parts = key.split(SEP)
    return [""] + [SEP.join(parts[: i + 1]) for i in range(len(parts))]


def is_ancestor(ancestor_key: str, key: str) -> bool:
    return ancestor_key == "" or key == ancestor_key or key.startswith(ancestor_key + SEP)


def depth(path: str | None) -> int:
    key = path_key(path)
    return 0 if not key else key.count(SEP) + 1


def estimate_tokens(text: str) -> int:
    """About four characters per token: cheap, monotone, good enough for a prompt budget."""
    return max(1, (len(text) + 3) // 4)


def fold(text: str) -> str:
    """Case- and spacing-insensitive form used for normalisation keys and duplicate checks."""
    return " ".join(text.lower().replace("-", " ").replace("_", " ").split())


def token_jaccard(a: str, b: str) -> float:
    """Similarity without an embedder (the deterministic fallback)."""
    ta, tb = set(_WORD.findall(a.lower())), set(_WORD.findall(b.lower()))
    if not ta or not tb:
        return 0.0
    return len(ta & tb) / len(ta | tb)


def cosine(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> float:
    va, vb = np.asarray(a, dtype=np.float32), np.asarray(b, dtype=np.float32)
    if va.shape != vb.shape:
        return 0.0
    na, nb = float(np.linalg.norm(va)), float(np.linalg.norm(vb))
    return 0.0 if na == 0 or nb == 0 else float(va @ vb) / (na * nb)


def normalize_conflicts(a: dict[str, str], b: dict[str, str]) -> list[str]:
    """Surface forms that the two maps send to different canonical values (a contradiction)."""
    fa = {fold(k): fold(v) for k, v in a.items()}
    fb = {fold(k): fold(v) for k, v in b.items()}
    return sorted(k for k in fa.keys() & fb.keys() if fa[k] != fb[k])
