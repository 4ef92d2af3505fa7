"""A contextual bandit over strategy mixes: disjoint LinUCB with an epsilon floor, estimator-style.

Why not vowpalwabbit's ``cb_explore_adf``: in this environment VW's option parser breaks once usearch's
native module is loaded in the same process ("Failed to convert 0.1 to f" for any typed option such as
``--epsilon``), so VW cannot be created after the index is opened. LinUCB is small, exact and easy to test.

Each arm keeps a ridge regression of reward on hashed context features (``A^-1`` updated by
Sherman-Morrison). ``choose`` plays the arm with the highest upper confidence bound with probability
``1 - epsilon`` and a uniform arm otherwise, so every decision has an exact propensity for off-policy
evaluation, and no arm's propensity is ever zero.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import IndexStateError, UnknownNameError
from .arms import DEFAULT_ARMS, Arm

__all__ = ["ContextualBandit", "context_vector"]


def context_vector(context: dict[str, Any], dim: int) -> np.ndarray:
    """Hashed features: numbers by key, strings one-hot by key=value; slot 0 is a constant bias."""
    x = np.zeros(dim, dtype=np.float64)
    x[0] = 1.0
    for key, value in context.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            for token in str(value).split():
                x[1 + zlib.crc32(f"{key}={token}".encode()) % (dim - 1)] += 1.0
        else:
            x[1 + zlib.crc32(key.encode()) % (dim - 1)] += float(value)
    return x


class ContextualBandit:
    def __init__(self, arms: Sequence[Arm] = DEFAULT_ARMS, *, alpha: float = 0.5, epsilon: float = 0.1,
                 ridge: float = 1.0, dim: int = 64, default_arm: str | None = "broad", seed: int = 0) -> None:
        self.arms = tuple(arms)
        self.default_arm = default_arm  # wins UCB ties, i.e. what a bandit that knows nothing plays
        self.alpha = alpha
        self.epsilon = epsilon
        self.ridge = ridge
        self.dim = dim
        self.seed = seed

    def _ensure(self) -> None:
        if not hasattr(self, "A_inv_"):
            k = len(self.arms)
            self.A_inv_ = np.repeat(np.eye(self.dim)[None] / self.ridge, k, axis=0)
            self.b_ = np.zeros((k, self.dim))
            self.counts_ = np.zeros(k, dtype=np.int64)
            self.rng_ = np.random.default_rng(self.seed)

    def _index(self, arm: str) -> int:
        for i, a in enumerate(self.arms):
            if a.name == arm:
                return i
        raise UnknownNameError("bandit arm", arm, [a.name for a in self.arms])

    # -- estimator interface ------------------------------------------------------------------------
    def fit(self, contexts: Sequence[dict[str, Any]], actions: Sequence[str], propensities: Sequence[float],
            rewards: Sequence[float]) -> ContextualBandit:
        """Learn from logged decisions from scratch (replaces what was learned before)."""
        for attr in ("A_inv_", "b_", "counts_"):
            self.__dict__.pop(attr, None)
        return self.partial_fit(contexts, actions, propensities, rewards)

    def partial_fit(self, contexts: Sequence[dict[str, Any]], actions: Sequence[str],
                    propensities: Sequence[float], rewards: Sequence[float]) -> ContextualBandit:
        """Update with more decisions. Propensities are accepted for the interface (and checked) but a
        per-arm regression needs no importance weighting: each arm is fitted on its own contexts."""
        self._ensure()
        for ctx, arm, p, r in zip(contexts, actions, propensities, rewards, strict=True):
            if not 0.0 < float(p) <= 1.0:
                raise ValueError(f"propensity {p} is not in (0, 1]")
            i = self._index(arm)
            x = context_vector(ctx, self.dim)
            Ax = self.A_inv_[i] @ x
            self.A_inv_[i] -= np.outer(Ax, Ax) / (1.0 + x @ Ax)
            self.b_[i] += float(r) * x
            self.counts_[i] += 1
        return self

    def ucb(self, context: dict[str, Any]) -> np.ndarray:
        self._ensure()
        x = context_vector(context, self.dim)
        theta = np.einsum("kij,kj->ki", self.A_inv_, self.b_)
        width = np.sqrt(np.einsum("i,kij,j->k", x, self.A_inv_, x))
        tie_break = np.array([1e-9 if a.name == self.default_arm else 0.0 for a in self.arms])
        return theta @ x + self.alpha * width + tie_break

    def pmf(self, context: dict[str, Any]) -> np.ndarray:
        k = len(self.arms)
        p = np.full(k, self.epsilon / k)
        p[int(np.argmax(self.ucb(context)))] += 1.0 - self.epsilon
        return p

    def choose(self, context: dict[str, Any]) -> tuple[Arm, float]:
        """Sample an arm from the exploration distribution; returns it with its propensity."""
        p = self.pmf(context)
        i = int(self.rng_.choice(len(p), p=p))
        return self.arms[i], float(p[i])

    def predict(self, contexts: Sequence[dict[str, Any]]) -> list[str]:
        """The greedy arm for each context (highest UCB, no epsilon)."""
        return [self.arms[int(np.argmax(self.ucb(c)))].name for c in contexts]

    # -- persistence --------------------------------------------------------------------------------
    def save(self, path: Path) -> None:
        self._ensure()
        tmp = path.with_name(path.name + ".tmp.npz")
        meta = json.dumps({"arms": [a.model_dump() for a in self.arms], "dim": self.dim})
        np.savez(tmp, A_inv=self.A_inv_, b=self.b_, counts=self.counts_, meta=np.array(meta))
        tmp.replace(path)

    def load(self, path: Path) -> ContextualBandit:
        if not path.exists():
            return self
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(str(data["meta"]))
                if [Arm(**a) for a in meta["arms"]] != list(self.arms) or meta["dim"] != self.dim:
                    raise ValueError("arms or feature size changed since it was saved")
                self.A_inv_, self.b_, self.counts_ = data["A_inv"], data["b"], data["counts"]
        except Exception as exc:
            raise IndexStateError(f"bandit model {path} is unreadable ({exc})",
                                  fix="delete it (the bandit restarts from no knowledge) and run "
                                      "`shelfwise search-learn`") from exc
        self.rng_ = np.random.default_rng(self.seed)
        return self
