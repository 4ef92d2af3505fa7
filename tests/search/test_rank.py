from __future__ import annotations

import numpy as np
import pytest

from shelfwise.errors import InputError, NotTrainedError
from shelfwise.search.rank import (
    FEATURE_NAMES,
    ClickSimulator,
    Interaction,
    LTRRanker,
    ipw_labels,
    position_propensity,
)


def test_ranker_learns_an_ordering_and_round_trips(tmp_path):
    rng = np.random.default_rng(0)
    n_q, per = 40, 20
    X = rng.normal(size=(n_q * per, len(FEATURE_NAMES))).astype(np.float32)
    y = np.clip(np.round(X[:, FEATURE_NAMES.index("cosine")] * 1.2 + 1.5), 0, 3).astype(int)
    ranker = LTRRanker(n_estimators=50, min_child_samples=5).fit(X, y, [per] * n_q)
    s = ranker.predict(X[:per])
    assert np.corrcoef(s, y[:per])[0, 1] > 0.8
    assert next(iter(ranker.feature_importance())) == "cosine"
    ranker.save(tmp_path / "r.json")
    np.testing.assert_allclose(LTRRanker().load(tmp_path / "r.json").predict(X[:per]), s)


def test_ranker_errors():
    with pytest.raises(NotTrainedError, match="search-learn"):
        LTRRanker().predict(np.zeros((1, len(FEATURE_NAMES))))
    with pytest.raises(InputError):
        LTRRanker().fit(np.zeros((3, 2)), np.zeros(3), [3])
    with pytest.raises(InputError, match="labels"):
        LTRRanker().fit(np.zeros((3, len(FEATURE_NAMES))), np.array([0, 1, 9]), [3])


def test_simulated_clicks_are_position_biased_and_follow_grades():
    sim = ClickSimulator(eta=1.0, seed=0)
    grades = {"a": 3, "b": 3, "c": 0}
    top = bottom = junk = 0
    for _ in range(3000):
        for pos, pid, kind in sim.simulate(["a", "c"] + [f"x{i}" for i in range(7)] + ["b"], grades):
            if kind == "click":
                top += pid == "a"
                bottom += pid == "b"
                junk += pid == "c"
    assert top > 5 * bottom > 0  # same grade, position 0 vs 9
    assert junk < top / 10


def test_ipw_labels_undo_position_bias():
    """Two equally attractive products, always shown at positions 0 and 4: raw clicks differ ~5x, the
    position-debiased labels agree."""
    sim = ClickSimulator(eta=1.0, click_prob={3: 0.5, 0: 0.0}, purchase_prob=0.0, seed=3)
    page = ["hi", "n1", "n2", "n3", "lo"]
    grades = {"hi": 3, "lo": 3}
    impressions, interactions = [], []
    for _ in range(4000):
        impressions.append(("q", page))
        interactions += [Interaction("q", pid, pos, kind) for pos, pid, kind in sim.simulate(page, grades)]
    raw = {p: sum(i.product_id == p for i in interactions) for p in ("hi", "lo")}
    assert raw["hi"] > 3 * raw["lo"]
    labels = ipw_labels(impressions, interactions, eta=1.0)
    assert labels[("q", "hi")] == labels[("q", "lo")] > labels[("q", "n1")] == 0
    np.testing.assert_allclose(position_propensity(3), [1, 0.5, 1 / 3])
