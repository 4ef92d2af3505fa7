"""Same inputs -> same results, in any process: the benchmark's small quality changes are only measurable
if two runs agree, and a shopper should not see results reshuffle after a restart."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from shelfwise.search import SearchConfig
from shelfwise.search.dense import DenseIndex


def _unit_vectors(n: int, dim: int) -> np.ndarray:
    v = np.random.default_rng(0).standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_hnsw_build_gives_the_same_graph_and_neighbours_every_time():
    # 4,000 rows: a multi-threaded build races here (threads=0 gave different neighbours in 4 of 5 tries).
    vectors = _unit_vectors(4000, 32)
    first, second = (DenseIndex(32, vectors, exact_max_rows=0) for _ in range(2))
    assert bytes(first.index.save()) == bytes(second.index.save())
    for query in vectors[:100]:
        rows_a, sims_a = first.search(query, 50)
        rows_b, sims_b = second.search(query, 50)
        assert rows_a.tolist() == rows_b.tolist()
        assert np.array_equal(sims_a, sims_b)


def test_the_single_threaded_build_is_the_default():
    assert SearchConfig().dense_build_threads == 1


_SEARCH_SCRIPT = """
import json, sys
from pathlib import Path
sys.path.insert(0, {tests!r})
from search.search_fixtures import ingest, make_app
from shelfwise.search import SearchService
sw = make_app(Path({home!r}))
ingest(sw)
svc = SearchService(sw)
svc.build_index()
svc.train_ranker({{"coffee": {{"p-espresso": 3, "p-beans": 2, "p-grinder": 1, "p-tent": 0}},
                   "running shoes": {{"p-runner": 3, "p-trail": 3, "p-boot": 1, "p-bag": 0}}}})
out = {{}}
for text in ("coffee", "running shoes", "camping", "summit", "wireless charger"):
    result = svc.search(text, 10)
    out[text] = [[h.product_id, round(h.score, 9), sorted(h.found_by)] for h in result.hits]
print(json.dumps(out))
sw.close()
"""


def _search_in_process(tmp_path: Path, hash_seed: str) -> dict:
    tests = str(Path(__file__).resolve().parent.parent)
    script = _SEARCH_SCRIPT.format(tests=tests, home=str(tmp_path / f"seed{hash_seed}"))
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300,
                          check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_search_results_do_not_depend_on_the_string_hash_seed(tmp_path):
    # Two processes with different string-hash orders (set/dict iteration of strings differs between them).
    first = _search_in_process(tmp_path, "1")
    second = _search_in_process(tmp_path, "2")
    assert first["coffee"], "the search returned nothing: the comparison would prove nothing"
    assert first == second


def test_simulated_time_fixes_click_decay_and_the_bandit_daypart(app):
    from datetime import UTC, datetime, timedelta

    from shelfwise.search import clock
    from shelfwise.search.memory import record_interaction
    from shelfwise.search.query import SearchContext

    start = datetime(2026, 1, 5, 13, tzinfo=UTC)
    scores = []
    for _ in range(2):  # the same sequence of reads gives the same times and decayed scores
        with clock.simulated_time(start, timedelta(days=30)), app.db.session() as s:
            first = record_interaction(s, "tent", "p-tent", "click", half_life_days=30)
            second = record_interaction(s, "tent", "p-tent", "click", half_life_days=30)  # 30 days later
            assert SearchContext().now == start + 2 * timedelta(days=30)
            scores.append((first, second))
        with app.db.session() as s:  # back to no clicks for the second round
            from shelfwise.search.models import MemoryEntry

            s.query(MemoryEntry).filter(MemoryEntry.source == "observed").delete()
    assert scores[0] == scores[1]
    assert scores[0][1] == scores[0][0] * 0.5 + scores[0][0]  # one half-life of decay, then one more click
    assert abs(clock.now() - datetime.now(UTC)) < timedelta(minutes=1)  # the wall clock is back
