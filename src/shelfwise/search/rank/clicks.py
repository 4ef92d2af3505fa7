"""Turning logged clicks into ranking labels with position-bias correction, and simulating clicks.

Shoppers look at top positions more, so raw click counts confuse "shown high" with "relevant". Each
interaction is weighted by the inverse of its position's examination propensity (IPW), giving an unbiased
estimate of the attractiveness of a (query, product) pair, which is then bucketed into graded labels.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["ClickSimulator", "Interaction", "ipw_labels", "position_propensity"]

KIND_WEIGHT = {"click": 1.0, "add_to_cart": 1.5, "purchase": 2.0, "customer_return": -2.0}


def position_propensity(n: int, eta: float = 1.0) -> np.ndarray:
    """Examination probability of positions 0..n-1 under the position-based model: (1/(k+1))^eta."""
    return (1.0 / np.arange(1, n + 1, dtype=np.float64)) ** eta


@dataclass(frozen=True)
class Interaction:
    query_key: str
    product_id: str
    position: int
    kind: str


def ipw_labels(impressions: Iterable[tuple[str, Sequence[str]]], interactions: Iterable[Interaction], *,
               eta: float = 1.0, thresholds: Sequence[float] = (0.05, 0.2, 0.5), max_weight: float = 20.0
               ) -> dict[tuple[str, str], int]:
    """Label 0..3 per (query key, product) shown at least once: IPW-debiased interaction rate, bucketed."""
    shown: dict[tuple[str, str], int] = defaultdict(int)
    for key, products in impressions:
        for pid in products:
            shown[(key, pid)] += 1
    theta = position_propensity(200, eta)
    gain: dict[tuple[str, str], float] = defaultdict(float)
    for it in interactions:
        w = min(1.0 / theta[min(it.position, len(theta) - 1)], max_weight)
        gain[(it.query_key, it.product_id)] += KIND_WEIGHT.get(it.kind, 0.0) * w
    labels = {}
    for pair, n in shown.items():
        rate = gain.get(pair, 0.0) / n
        labels[pair] = int(np.searchsorted(np.asarray(thresholds), rate, side="right"))
    return labels


class ClickSimulator:
    """Position-based click model from graded labels: a shopper examines position k with probability
    (1/(k+1))^eta and clicks an examined product with a probability set by its grade; clicked Exact
    products are sometimes bought."""

    def __init__(self, eta: float = 1.0, click_prob: Mapping[int, float] | None = None,
                 purchase_prob: float = 0.3, seed: int = 0) -> None:
        self.eta = eta
        self.click_prob = dict(click_prob or {0: 0.02, 1: 0.1, 2: 0.3, 3: 0.8})
        self.purchase_prob = purchase_prob
        self.seed = seed
        self.rng_ = np.random.default_rng(seed)

    def simulate(self, ranked: Sequence[str], grades: Mapping[str, int]) -> list[tuple[int, str, str]]:
        """(position, product id, kind) for each interaction on one result page, kinds click/purchase."""
        n = len(ranked)
        if n == 0:
            return []
        examined = self.rng_.random(n) < position_propensity(n, self.eta)
        p_click = np.array([self.click_prob.get(grades.get(pid, 0), 0.0) for pid in ranked])
        clicked = examined & (self.rng_.random(n) < p_click)
        out = []
        for pos in np.flatnonzero(clicked):
            pid = ranked[pos]
            out.append((int(pos), pid, "click"))
            if grades.get(pid, 0) == 3 and self.rng_.random() < self.purchase_prob:
                out.append((int(pos), pid, "purchase"))
        return out
