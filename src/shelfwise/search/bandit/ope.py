"""Off-policy estimators of a target policy's value from logs of another policy. Pure functions over arrays.

``w = pi_e(a|x) / pi_b(a|x)`` for each logged (context x, action a, reward r, behaviour propensity):
    IPS   = mean(w r)                                 unbiased, high variance
    SNIPS = sum(w r) / sum(w)                         self-normalised: small bias, much lower variance
    DR    = mean(q_e(x) + w (r - q(x, a)))            q: a reward model; q_e(x) = E_{a~pi_e} q(x, a)
"""

from __future__ import annotations

import numpy as np

__all__ = ["doubly_robust", "importance_weights", "ips", "snips"]


def importance_weights(target_prob: np.ndarray, behavior_prob: np.ndarray, clip: float | None = None) -> np.ndarray:
    target = np.asarray(target_prob, dtype=np.float64)
    behavior = np.asarray(behavior_prob, dtype=np.float64)
    if np.any(behavior <= 0):
        raise ValueError("behaviour propensities must be > 0 for every logged action")
    w = target / behavior
    return np.minimum(w, clip) if clip is not None else w


def ips(rewards: np.ndarray, target_prob: np.ndarray, behavior_prob: np.ndarray, clip: float | None = None) -> float:
    w = importance_weights(target_prob, behavior_prob, clip)
    return float(np.mean(w * np.asarray(rewards, dtype=np.float64)))


def snips(rewards: np.ndarray, target_prob: np.ndarray, behavior_prob: np.ndarray) -> float:
    w = importance_weights(target_prob, behavior_prob)
    total = w.sum()
    return float((w * np.asarray(rewards, dtype=np.float64)).sum() / total) if total > 0 else 0.0


def doubly_robust(rewards: np.ndarray, target_prob: np.ndarray, behavior_prob: np.ndarray,
                  q_logged: np.ndarray, q_target: np.ndarray, clip: float | None = None) -> float:
    """``q_logged``: the reward model at the logged action; ``q_target``: its expectation under the target."""
    w = importance_weights(target_prob, behavior_prob, clip)
    r = np.asarray(rewards, dtype=np.float64)
    return float(np.mean(np.asarray(q_target, np.float64) + w * (r - np.asarray(q_logged, np.float64))))
