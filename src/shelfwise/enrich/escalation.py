"""Which products the supervisor sees. A disagreement (conflicting workers, an evaluator flag) always goes to
it. Beyond that, the supervisor budget (``LoopConfig.supervisor_budget``, a fraction of products) is spent on
the products whose workers are *least sure*: the ones that left likely attributes empty or rest on a single
worker. Without this the loop escalates only where two workers happened to clash, and a small generator that
simply misses values (low recall) is never corrected.

Uncertainty of one product = 2 per disputed attribute + the prior of every empty attribute + 0.5 per value
only one worker found. The prior of an attribute is how likely a listing states it: schemas list attributes
most frequent first (the OA-Mine ones are derived that way from train), so the i-th gets ``0.9 * 0.8**i``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from .agreement import AttributeDecision

__all__ = ["EscalationPolicy", "attribute_prior", "uncertainty"]


def attribute_prior(position: int) -> float:
    return 0.9 * 0.8 ** position


def uncertainty(names: Sequence[str], decisions: Mapping[str, AttributeDecision], disputed: Iterable[str]) -> float:
    disputed = set(disputed)
    score = 2.0 * len(disputed)
    for i, a in enumerate(names):
        d = decisions[a]
        if a in disputed:
            continue
        if d.value is None:
            score += attribute_prior(i)
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
