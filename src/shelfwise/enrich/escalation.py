"""Which products the supervisor sees. A disagreement (conflicting workers, an evaluator flag) always goes to
it. Beyond that, the supervisor budget (``LoopConfig.supervisor_budget``, a fraction of products) is spent on
the products whose workers are *least sure*: the ones that left likely attributes empty or rest on a single
worker. Without this the loop escalates only where two workers happened to clash, and a small generator that
simply misses values (low recall) is never corrected.

Uncertainty of one product = 2 per disputed attribute + the prior of every empty attribute + 0.5 per value
only one worker found. The prior of an attribute is how likely a listing states it. Before the loop has seen a
category, that comes from the schema's order: schemas list attributes most frequent first (the OA-Mine ones are
derived that way from train), so the i-th gets ``0.9 * 0.8**i``. A hand-written schema need not be ordered that
way, so ``FillRates`` then learns the rate from the values the loop stored in the category (the schema's guess
counts as ``strength`` pseudo-products, so a few products barely move it)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from sqlalchemy import distinct, func, select
from sqlalchemy.orm import Session

from ..store.models import ExtractedValue, JobItem, Product
from .agreement import AttributeDecision

__all__ = ["EscalationPolicy", "FillRates", "attribute_prior", "uncertainty"]


def attribute_prior(position: int) -> float:
    return 0.9 * 0.8 ** position


@dataclass(frozen=True)
class FillRates:
    """How often the loop found a value for each attribute of a category: ``products[category]`` products
    enriched, ``filled[(category, attribute)]`` of them with a current non-empty value."""

    products: Mapping[str, int] = field(default_factory=dict)
    filled: Mapping[tuple[str, str], int] = field(default_factory=dict)
    strength: float = 8.0

    @classmethod
    def from_store(cls, session: Session, categories: Iterable[str], *, exclude_job: str | None = None,
                   strength: float = 8.0) -> FillRates:
        """Over the products enriched by finished enrich jobs other than ``exclude_job`` (so that a resumed
        batch ranks its products with the rates the crashed run started from) and their current values; an
        attribute the loop left empty stores no value, so the products are counted from the job marks."""
        cats = sorted(set(categories))
        if not cats:
            return cls(strength=strength)
        done = select(JobItem.item).where(JobItem.job.like("enrich:%"), JobItem.status == "done")
        if exclude_job is not None:
            done = done.where(JobItem.job != exclude_job)
        enriched = select(Product.id, Product.category_path).where(Product.category_path.in_(cats),
                                                                  Product.id.in_(done)).subquery()
        products = dict(session.execute(select(enriched.c.category_path, func.count())
                                        .group_by(enriched.c.category_path)).all())
        filled = {(c, a): n for c, a, n in session.execute(
            select(enriched.c.category_path, ExtractedValue.attribute, func.count(distinct(ExtractedValue.product_id)))
            .join(enriched, enriched.c.id == ExtractedValue.product_id)
            .where(ExtractedValue.is_current.is_(True), ExtractedValue.value.is_not(None), ExtractedValue.value != "")
            .group_by(enriched.c.category_path, ExtractedValue.attribute))}
        return cls(products, filled, strength)

    def priors(self, category: str, names: Sequence[str]) -> list[float]:
        n = self.products.get(category, 0)
        return [round((self.filled.get((category, a), 0) + self.strength * attribute_prior(i))
                      / (n + self.strength), 4) for i, a in enumerate(names)]


def uncertainty(names: Sequence[str], decisions: Mapping[str, AttributeDecision], disputed: Iterable[str],
                priors: Sequence[float] | None = None) -> float:
    """``priors`` (one per name, e.g. ``FillRates.priors``) default to the schema order's."""
    disputed = set(disputed)
    score = 2.0 * len(disputed)
    for i, a in enumerate(names):
        d = decisions[a]
        if a in disputed:
            continue
        if d.value is None:
            score += priors[i] if priors is not None else attribute_prior(i)
        elif d.status == "check":
            score += 0.5
    return round(score, 4)


class EscalationPolicy:
    """Online, per batch: a product without disputes is escalated when its uncertainty ranks in the top
    ``budget`` share of the scores seen (earlier batches' ``history`` and this batch's products) and the
    batch's supervisor-call rate stays within the budget. Built from stored results, so a resumed batch
    decides as the crashed run would have."""

    def __init__(self, budget: float, history: Iterable[float] = (), *, slack: float = 0.5, warmup: int = 4,
                 cold_threshold: float = 3.0) -> None:
        # cold_threshold 3.0: about the score of a listing where the workers found little beyond one value
        self.budget, self.slack, self.warmup, self.cold_threshold = budget, slack, warmup, cold_threshold
        self.history = list(history)
        self.products = self.calls = 0

    def observe(self, score: float, escalated: bool) -> None:
        self.history.append(score)
        self.products += 1
        self.calls += bool(escalated)

    def should_escalate(self, score: float, has_disputes: bool) -> bool:
        if has_disputes:
            return True
        if self.budget <= 0 or score <= 0:
            return False
        if self.calls + 1 > self.budget * (self.products + 1) + self.slack:
            return False
        if len(self.history) < self.warmup:  # too few scores to rank against: an absolute bar instead
            return score >= self.cold_threshold
        seen = [*self.history, score]
        below = sum(1 for x in seen if x < score) / len(seen)
        return below >= 1 - self.budget
