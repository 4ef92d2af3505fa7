from __future__ import annotations

import numpy as np
import pytest

from shelfwise.errors import IndexStateError, UnknownNameError
from shelfwise.search.bandit import DEFAULT_ARMS, ContextualBandit, doubly_robust, ips, snips


def _world(ctx: dict) -> str:
    """The best arm depends on the context: digits -> lexical, long queries -> dense."""
    return "lexical" if ctx["has_digit"] else "dense"


def _contexts(n: int, rng: np.random.Generator) -> list[dict]:
    return [{"has_digit": float(rng.random() < 0.5), "n_tokens": float(rng.integers(1, 6)), "segment": "anon"}
            for _ in range(n)]


def test_bandit_learns_the_best_arm_per_context_with_valid_propensities():
    rng = np.random.default_rng(0)
    bandit = ContextualBandit(epsilon=0.1, seed=0)
    total = 0.0
    for ctx in _contexts(1500, rng):
        arm, p = bandit.choose(ctx)
        assert 0.1 / len(DEFAULT_ARMS) <= p <= 1.0 and p == pytest.approx(bandit.pmf(ctx)[
            [a.name for a in DEFAULT_ARMS].index(arm.name)])
        reward = float(rng.random() < (0.8 if arm.name == _world(ctx) else 0.2))
        total += reward
        bandit.partial_fit([ctx], [arm.name], [p], [reward])
    test = _contexts(200, rng)
    greedy = bandit.predict(test)
    assert np.mean([g == _world(c) for g, c in zip(greedy, test, strict=True)]) > 0.95
    assert total / 1500 > 0.6  # far above the 0.3 a uniform policy earns


def test_fit_replaces_partial_fit_accumulates_and_save_load(tmp_path):
    rng = np.random.default_rng(1)
    ctxs = _contexts(300, rng)
    acts = [_world(c) for c in ctxs]
    bandit = ContextualBandit().fit(ctxs, acts, [0.5] * 300, [1.0] * 300)
    assert bandit.counts_.sum() == 300
    bandit.fit(ctxs[:10], acts[:10], [0.5] * 10, [1.0] * 10)
    assert bandit.counts_.sum() == 10
    bandit.partial_fit(ctxs, acts, [0.5] * 300, [1.0] * 300)
    bandit.save(tmp_path / "b.npz")
    loaded = ContextualBandit().load(tmp_path / "b.npz")
    np.testing.assert_allclose(loaded.ucb(ctxs[0]), bandit.ucb(ctxs[0]))
    (tmp_path / "bad.npz").write_bytes(b"nope")
    with pytest.raises(IndexStateError):
        ContextualBandit().load(tmp_path / "bad.npz")
    with pytest.raises(UnknownNameError):
        bandit.partial_fit(ctxs[:1], ["no-such-arm"], [0.5], [1.0])
    with pytest.raises(ValueError):
        bandit.partial_fit(ctxs[:1], ["dense"], [0.0], [1.0])


def _logged(n: int, seed: int = 0):
    """Uniform logging over 4 actions; action a pays with probability 0.1 * (a + 1)."""
    rng = np.random.default_rng(seed)
    actions = rng.integers(0, 4, n)
    rewards = (rng.random(n) < 0.1 * (actions + 1)).astype(float)
    return actions, rewards, np.full(n, 0.25)


def test_ips_snips_dr_recover_a_target_policy_value():
    actions, rewards, p_b = _logged(40_000)
    target = np.array([0.1, 0.1, 0.1, 0.7])  # mostly the best action
    truth = float((target * 0.1 * np.arange(1, 5)).sum())
    tp = target[actions]
    assert ips(rewards, tp, p_b) == pytest.approx(truth, abs=0.01)
    assert snips(rewards, tp, p_b) == pytest.approx(truth, abs=0.01)
    q = 0.1 * np.arange(1, 5)  # a perfect reward model: DR is then exact up to noise of the correction
    dr = doubly_robust(rewards, tp, p_b, q[actions], np.full(len(actions), (target * q).sum()))
    assert dr == pytest.approx(truth, abs=0.005)
    wrong_q = np.zeros(4)  # a useless model: DR falls back to IPS
    assert doubly_robust(rewards, tp, p_b, wrong_q[actions], np.zeros(len(actions))) == pytest.approx(
        ips(rewards, tp, p_b))


def test_ope_rejects_zero_behaviour_propensities():
    with pytest.raises(ValueError, match="propensities"):
        ips(np.ones(2), np.ones(2), np.array([0.5, 0.0]))


def test_a_bandit_that_knows_nothing_plays_its_default_arm():
    assert ContextualBandit().predict([{"n_tokens": 2.0}]) == ["broad"]
    assert ContextualBandit(default_arm="dense").predict([{"n_tokens": 2.0}]) == ["dense"]
