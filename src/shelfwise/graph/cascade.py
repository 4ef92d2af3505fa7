"""The refinement cascade. Each stage is a small pure function chosen by name that returns, for the
candidates it drops, the reason; ``run_cascade`` reports per stage how many went in, were dropped and why.

    completeness → echo → genericness → paraphrase → annotation → classifier
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator
from rapidfuzz import fuzz
from rapidfuzz.distance import Levenshtein

from .behaviour import ProductInfo

__all__ = [
    "STAGES",
    "CandView",
    "CascadeConfig",
    "CascadeContext",
    "StageReport",
    "completeness_score",
    "run_cascade",
]


@dataclass
class CandView:
    id: int
    pair_key: str
    kind: str
    query: str | None
    product_ids: list[str]
    relation: str
    tail: str
    scores: dict[str, Any] = field(default_factory=dict)
    stage: str = "new"
    reason: str = ""


@dataclass
class CascadeContext:
    products: dict[str, ProductInfo]
    embedder: Any = None  # .embed(list[str]) -> (n, d) normalised
    classifier: Any = None  # IntentClassifier (fitted) or None
    annotations: dict[int, dict[str, bool]] = field(default_factory=dict)  # resolved human labels
    # tail -> products it was generated for, over the whole graph so far (for genericness)
    tail_products: dict[str, Counter[str]] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)


class CascadeConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    stages: tuple[str, ...] = ("completeness", "echo", "genericness", "paraphrase", "annotation", "classifier")
    min_completeness: float = Field(0.5, ge=0, le=1)
    echo_similarity: float = Field(85.0, ge=0, le=100, description="rapidfuzz ratio at or above = echo")
    echo_max_distance: int = Field(2, ge=0)
    generic_min_products: int = Field(5, ge=2)
    generic_product_share: float = Field(0.2, gt=0, le=1)
    generic_min_entropy: float = Field(0.8, ge=0, le=1)
    paraphrase_similarity: float = Field(0.85, gt=0, le=1)
    plausibility_threshold: float = Field(0.5, ge=0, le=1)

    @field_validator("stages")
    @classmethod
    def _known(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [s for s in v if s not in STAGES]
        if unknown:
            from ..errors import UnknownNameError

            raise UnknownNameError("cascade stage", unknown[0], list(STAGES))
        return v


class StageReport(BaseModel):
    stage: str
    n_in: int
    dropped: int
    kept: int
    reasons: dict[str, int] = Field(default_factory=dict)
    note: str = ""


_DANGLING = {"and", "or", "the", "a", "an", "of", "for", "to", "with", "in", "on", "at", "by", "from", "their",
             "his", "her", "your", "is", "are", "be", "that", "which", "because", "as", "than", "so", "but"}
# The seed's examples of circular filler ("bought them together because they like them").
_CIRCULAR = re.compile(r"\b(like (it|them)|same reason|good quality|need (it|them)|personal use|"
                       r"they want (it|them)|it is useful|bought together|use (the|this|these) products?|use it)\b")


def completeness_score(tail: str) -> float:
    """A cheap stand-in for a language-model sentence score: tails are 2-6 word phrases, where the
    failures are truncation (dangling function word, '...', open bracket) and non-text, which rules catch
    at no model cost on shared cores."""
    words = tail.split()
    if not words:
        return 0.0
    score = 1.0
    if words[-1] in _DANGLING:
        score = min(score, 0.1)
    if "..." in tail or "…" in tail or tail.count("(") != tail.count(")") or tail.count('"') % 2:
        score = min(score, 0.2)
    letters = sum(c.isalpha() for c in tail)
    if letters / max(1, len(tail.replace(" ", ""))) < 0.6 or letters < 3:
        score = min(score, 0.2)
    if len(words) > 12:
        score = min(score, 0.4)  # a run-on sentence, not a tail
    return score


def _completeness(cands, ctx, cfg) -> dict[int, str]:  # type: ignore[no-untyped-def]
    out = {}
    for i, c in enumerate(cands):
        c.scores["completeness"] = s = completeness_score(c.tail)
        if s < cfg.min_completeness:
            out[i] = "incomplete phrase"
        elif c.relation == "other":
            out[i] = "no known relation"
    return out


def _echo(cands, ctx, cfg) -> dict[int, str]:  # type: ignore[no-untyped-def]
    out = {}
    for i, c in enumerate(cands):
        refs = [("query", c.query or "")]
        for pid in c.product_ids:
            info = ctx.products.get(pid)
            if info:
                refs += [("product type", info.product_type), ("title", info.title.lower())]
        for what, ref in refs:
            ref = ref.strip().lower()
            if ref and (c.tail == ref or Levenshtein.distance(c.tail, ref) <= cfg.echo_max_distance
                        or fuzz.ratio(c.tail, ref) >= cfg.echo_similarity):
                out[i] = f"echoes the {what}"
                break
    return out


def _entropy(counts: Counter[str]) -> float:
    total = sum(counts.values())
    if len(counts) < 2:
        return 0.0
    h = -sum(n / total * math.log(n / total) for n in counts.values())
    return h / math.log(len(counts))


def _genericness(cands, ctx, cfg) -> dict[int, str]:  # type: ignore[no-untyped-def]
    seen: dict[str, Counter[str]] = defaultdict(Counter)
    for tail, prods in ctx.tail_products.items():
        seen[tail].update(prods)
    for c in cands:
        seen[c.tail].update(c.product_ids)
    all_products = {p for prods in seen.values() for p in prods}
    limit = max(cfg.generic_min_products, cfg.generic_product_share * len(all_products))
    out = {}
    for i, c in enumerate(cands):
        prods = seen[c.tail]
        c.scores["tail_products"] = len(prods)
        if _CIRCULAR.search(c.tail):
            out[i] = "circular filler"
        elif len(prods) >= limit and _entropy(prods) >= cfg.generic_min_entropy:
            out[i] = f"generic (spread over {len(prods)} products)"
    return out


def _input_text(c: CandView, products: dict[str, ProductInfo]) -> str:
    titles = [products[p].title for p in c.product_ids if p in products]
    return " ; ".join(([c.query] if c.query else []) + titles)


def _paraphrase(cands, ctx, cfg) -> dict[int, str]:  # type: ignore[no-untyped-def]
    if ctx.embedder is None:
        ctx.notes["paraphrase"] = "skipped: no embedder"
        return {}
    if not cands:
        return {}
    tails = ctx.embedder.embed([c.tail for c in cands])
    inputs = ctx.embedder.embed([_input_text(c, ctx.products) for c in cands])
    sims = np.sum(np.asarray(tails) * np.asarray(inputs), axis=1)
    out = {}
    for i, (c, s) in enumerate(zip(cands, sims, strict=True)):
        c.scores["input_similarity"] = round(float(s), 4)
        if s >= cfg.paraphrase_similarity:
            out[i] = "paraphrases the input"
    return out


def _annotation(cands, ctx, cfg) -> dict[int, str]:  # type: ignore[no-untyped-def]
    out = {}
    for i, c in enumerate(cands):
        labels = ctx.annotations.get(c.id)
        if labels is None:
            continue
        c.scores["human"] = labels
        failed = [q for q in ("complete", "relevant", "plausible") if labels.get(q) is False]
        if failed:
            out[i] = f"annotators: not {failed[0]}"
    return out


def _classifier(cands, ctx, cfg) -> dict[int, str]:  # type: ignore[no-untyped-def]
    if ctx.classifier is None:
        ctx.notes["classifier"] = "skipped: not trained (run `shelfwise graph train`)"
        return {}
    todo = [i for i, c in enumerate(cands) if "human" not in c.scores]
    if not todo:
        return {}
    scores = ctx.classifier.score([cands[i] for i in todo], ctx.products)
    out = {}
    for i, (plaus, typ) in zip(todo, scores, strict=True):
        cands[i].scores["plausibility"], cands[i].scores["typicality"] = round(plaus, 4), round(typ, 4)
        if plaus < cfg.plausibility_threshold:
            out[i] = "classifier: implausible"
    return out


STAGES: dict[str, Callable[..., dict[int, str]]] = {
    "completeness": _completeness,
    "echo": _echo,
    "genericness": _genericness,
    "paraphrase": _paraphrase,
    "annotation": _annotation,
    "classifier": _classifier,
}


def run_cascade(cands: list[CandView], ctx: CascadeContext, config: CascadeConfig | None = None
                ) -> tuple[list[CandView], list[StageReport]]:
    """Run the stages in order; dropped candidates get ``stage``/``reason`` set, survivors ``kept``."""
    cfg = config or CascadeConfig()
    alive, reports = list(cands), []
    for name in cfg.stages:
        drops = STAGES[name](alive, ctx, cfg)
        reasons: Counter[str] = Counter()
        for i, why in drops.items():
            alive[i].stage, alive[i].reason = name, why
            reasons[why.split(" (")[0]] += 1
        reports.append(StageReport(stage=name, n_in=len(alive), dropped=len(drops),
                                   kept=len(alive) - len(drops), reasons=dict(reasons),
                                   note=ctx.notes.get(name, "")))
        alive = [c for i, c in enumerate(alive) if i not in drops]
    for c in alive:
        c.stage, c.reason = "kept", ""
    return alive, reports
