"""The cross-encoder second stage: blending, depth, caching, and its wiring through the service. The pair
scorer here is ``ScriptedPairScorer``, a test double; the real cross-encoder is exercised in
``test_slow_real_embedder.py`` and ``tests/llm/test_onnx_models.py``."""

from __future__ import annotations

import time
from datetime import timedelta

import numpy as np
import pytest

from shelfwise.config import RerankerConfig
from shelfwise.errors import ConfigError, InputError
from shelfwise.search import ProductDoc, SearchService
from shelfwise.search.rank import SecondStage, pair_text
from shelfwise.store import EventLog

from .search_fixtures import ingest, make_app


class ScriptedPairScorer:
    """Test double: a fixed score per keyword found in the document, and a record of every pair scored."""

    name = "scripted"

    def __init__(self, scores: dict[str, float]) -> None:
        self.scores, self.calls = scores, []

    def score(self, query: str, documents: list[str]) -> np.ndarray:
        self.calls += [(query, d) for d in documents]
        return np.array([max((s for w, s in self.scores.items() if w in d.lower()), default=0.0) for d in documents])


def _docs(*titles: str) -> list[ProductDoc]:
    return [ProductDoc(id=f"p{i}", title=t) for i, t in enumerate(titles)]


def test_the_head_is_reordered_by_the_blend_and_the_tail_keeps_its_order():
    docs = _docs("alpha", "beta", "gamma", "delta", "epsilon")
    first = np.array([5.0, 4.0, 3.0, 2.0, 1.0])
    stage = SecondStage(ScriptedPairScorer({"gamma": 10.0}), depth=3, weight=2.0)
    order, pair = stage.rerank("q", docs, first)
    assert order.tolist() == [2, 0, 1, 3, 4]  # gamma jumps to the top; delta, epsilon untouched
    assert pair.tolist() == [10.0, 0.0, 0.0]  # aligned with the new head
    assert [q for q, _ in stage.scorer.calls] == ["q"] * 3  # only the head was scored


def test_weight_zero_or_depth_below_two_keeps_the_first_order():
    docs = _docs("alpha", "beta", "gamma")
    first = np.array([1.0, 3.0, 2.0])
    assert SecondStage(ScriptedPairScorer({"alpha": 9.0}), weight=0.0).rerank("q", docs, first)[0].tolist() == [1, 2, 0]
    stage = SecondStage(ScriptedPairScorer({"alpha": 9.0}), depth=1)
    order, pair = stage.rerank("q", docs, first)
    assert order.tolist() == [1, 2, 0] and len(pair) == 0 and stage.scorer.calls == []


def test_a_strong_first_stage_lead_survives_a_weak_cross_encoder_preference():
    # Blending, not replacing: a small cross-encoder margin cannot overturn a large ranker margin.
    docs = _docs("alpha", "beta", "gamma", "delta")
    first = np.array([10.0, 0.0, 0.0, 0.0])
    scorer = ScriptedPairScorer({"beta": 1.0, "gamma": 0.9, "delta": 0.8, "alpha": 0.7})
    assert SecondStage(scorer, depth=4, weight=0.5).rerank("q", docs, first)[0][0] == 0
    assert SecondStage(scorer, depth=4, weight=4.0).rerank("q", docs, first)[0][0] == 1


def test_scores_are_cached_by_query_and_text_and_the_cache_is_bounded():
    scorer = ScriptedPairScorer({"beta": 1.0})
    stage = SecondStage(scorer, depth=2, cache_size=3)
    docs = _docs("alpha", "beta")
    stage.rerank("q", docs, np.array([2.0, 1.0]))
    stage.rerank("q", docs, np.array([2.0, 1.0]))
    assert len(scorer.calls) == 2 and stage.pairs_scored == 2  # the second request cost no model pass
    changed = _docs("alpha", "beta v2")  # an updated product text is a new pair: never a stale score
    stage.rerank("q", changed, np.array([2.0, 1.0]))
    assert scorer.calls[-1] == ("q", "beta v2") and len(scorer.calls) == 3
    stage.rerank("other", docs, np.array([2.0, 1.0]))
    assert len(stage._cache) == 3  # bounded: the oldest pairs went first


def test_duplicate_texts_in_one_request_are_scored_once():
    scorer = ScriptedPairScorer({})
    SecondStage(scorer, depth=3).rerank("q", _docs("same", "same", "other"), np.array([3.0, 2.0, 1.0]))
    assert sorted(d for _, d in scorer.calls) == ["other", "same"]


def test_pair_text_is_what_a_shopper_sees_first():
    doc = ProductDoc(id="x", title="Burr grinder", brand="Brewmaster", category="Home > Kitchen > Grinders",
                     text="a very long description " * 50)
    assert pair_text(doc) == "Burr grinder. Brewmaster. Grinders"


def test_invalid_stage_settings_are_rejected():
    with pytest.raises(ValueError, match=">= 0"):
        SecondStage(ScriptedPairScorer({}), depth=-1)
    with pytest.raises(ValueError):
        RerankerConfig(depth=101)


def _service(tmp_path, **reranker):  # type: ignore[no-untyped-def]
    """A built search service on the small catalog whose cross-encoder is a ScriptedPairScorer that loves
    tents; ``reranker`` sets ``Settings.search_reranker``."""
    sw = make_app(tmp_path)
    if reranker:
        sw.settings = sw.settings.model_copy(update={"search_reranker": RerankerConfig(**reranker)})
    ingest(sw)
    scorer = ScriptedPairScorer({"tent": 8.0})
    sw.__dict__["cross_encoder"] = scorer  # Shelfwise.cross_encoder is a cached property: set it first
    svc = SearchService(sw)
    svc.build_index()
    return svc, scorer


@pytest.fixture
def scripted(tmp_path):
    svc, scorer = _service(tmp_path)
    yield svc, scorer
    svc.sw.close()


def test_service_leaves_the_stage_off_by_default_and_runs_it_on_request(scripted):
    svc, scorer = scripted
    plain = svc.search("camping gear", k=5, arm="broad")
    assert not plain.ranker.endswith("+ce") and all(h.rerank_score is None for h in plain.hits)
    assert scorer.calls == []  # off by default: no model pass
    result = svc.search("camping gear", k=5, arm="broad", rerank=4)
    assert result.ranker.endswith("+ce") and result.hits[0].product_id == "p-tent"
    assert [h.rerank_score is not None for h in result.hits] == [True] * 4 + [False]
    with svc.sw.db.session() as s:  # the log holds the order the shopper saw, and says the stage ran
        logged = [r.event for r in EventLog(s).read("search_impression")][-1]
    assert logged.product_ids == result.product_ids and logged.action["ranker"].endswith("+ce")
    with pytest.raises(InputError, match="0 \\(off\\) to 100"):
        svc.search("camping gear", rerank=101)


def test_settings_turn_the_stage_on_for_every_request(tmp_path):
    svc, _ = _service(tmp_path, depth=3)
    assert svc.search("camping gear", arm="broad").ranker.endswith("+ce")
    assert not svc.search("camping gear", arm="broad", rerank=0).ranker.endswith("+ce")
    svc.sw.close()


def test_a_searcher_without_a_stage_says_how_to_add_one(service):
    searcher = service.searcher()
    searcher.second_stage = None
    with pytest.raises(ConfigError, match="SecondStage"):
        searcher.search("espresso", rerank=5)
    assert searcher.search("espresso").hits  # no request for it: fine


def test_background_mode_never_waits_and_reranks_from_the_second_visit():
    docs = _docs("alpha", "beta", "gamma")
    first = np.array([3.0, 2.0, 1.0])
    scorer = ScriptedPairScorer({"gamma": 10.0})
    stage = SecondStage(scorer, depth=3, mode="background")
    order, pair = stage.rerank("q", docs, first)
    assert order.tolist() == [0, 1, 2] and len(pair) == 0  # served by the first stage at once
    stage.drain()
    assert len(scorer.calls) == 3  # scored in the background
    order, pair = stage.rerank("q", docs, first)
    assert order.tolist()[0] == 2 and pair[0] == 10.0 and len(scorer.calls) == 3  # from the cache
    order, pair = stage.rerank("q", docs, first, wait=True)  # an explicit request is honoured at once
    assert order.tolist()[0] == 2


def test_background_failures_are_logged_and_do_not_stop_the_worker(caplog):
    class Failing(ScriptedPairScorer):
        def score(self, query, documents):
            if query == "boom":
                raise RuntimeError("model crashed")
            return super().score(query, documents)

    stage = SecondStage(Failing({"beta": 5.0}), depth=2, mode="background")
    docs, first = _docs("alpha", "beta"), np.array([2.0, 1.0])
    stage.rerank("boom", docs, first)
    stage.drain()
    assert "model crashed" in caplog.text
    stage.rerank("fine", docs, first)
    stage.drain()
    assert stage.rerank("fine", docs, first)[0].tolist() == [1, 0]  # the worker survived and kept scoring


def test_background_mode_needs_a_cache():
    with pytest.raises(ValueError, match="cache"):
        SecondStage(ScriptedPairScorer({}), mode="background", cache_size=0)
    with pytest.raises(ValueError, match="cache_size > 0"):
        RerankerConfig(mode="background", cache_size=0)
    with pytest.raises(ValueError, match="mode"):
        SecondStage(ScriptedPairScorer({}), mode="lazy")  # type: ignore[arg-type]


def test_service_background_mode_serves_at_once_then_from_the_cache(tmp_path):
    svc, _ = _service(tmp_path, depth=4, mode="background")
    assert not svc.search("camping gear", arm="broad").ranker.endswith("+ce")
    svc.second_stage.drain()
    svc.reload()  # a pipeline reload keeps the stage and its scores
    result = svc.search("camping gear", arm="broad")
    assert result.ranker.endswith("+ce") and result.hits[0].product_id == "p-tent"
    svc.sw.close()


def test_scores_survive_a_restart_and_a_foreign_or_broken_file_is_ignored(tmp_path, caplog):
    docs, first = _docs("alpha", "beta"), np.array([2.0, 1.0])
    stage = SecondStage(ScriptedPairScorer({"beta": 5.0}), depth=2, mode="background")
    stage.rerank("q", docs, first, wait=True)
    path = tmp_path / "scores.json"
    assert stage.save(path) == 2
    restarted = SecondStage(ScriptedPairScorer({"beta": 5.0}), depth=2, mode="background")
    assert restarted.load(path) == 2
    assert restarted.rerank("q", docs, first)[0].tolist() == [1, 0] and restarted.scorer.calls == []  # warm
    other = ScriptedPairScorer({})
    other.name = "another-model"  # its scores are on another scale
    assert SecondStage(other).load(path) == 0 and "another-model" in caplog.text
    path.write_text("{not json")
    assert SecondStage(ScriptedPairScorer({})).load(path) == 0 and "unreadable" in caplog.text
    assert SecondStage(ScriptedPairScorer({})).load(tmp_path / "missing.json") == 0
    small = SecondStage(ScriptedPairScorer({}), cache_size=1)
    stage.save(path)
    assert small.load(path) == 1 and len(small) == 1  # the most recent fit


def test_learn_saves_the_scores_and_a_new_service_starts_warm(tmp_path):
    svc, _ = _service(tmp_path, depth=4, mode="background")
    sw = svc.sw
    svc.search("camping gear", arm="broad")
    svc.second_stage.drain()
    assert svc.learn(feedback_window=timedelta(0), retrain_ranker=False)["rerank_scores_saved"] == 4
    fresh = SearchService(sw)  # a restarted worker process
    assert fresh.search("camping gear", arm="broad").ranker.endswith("+ce")
    sw.close()


def test_background_scoring_waits_for_a_quiet_moment():
    docs, first = _docs("alpha", "beta"), np.array([2.0, 1.0])
    scorer = ScriptedPairScorer({"beta": 5.0})
    stage = SecondStage(scorer, depth=2, mode="background", idle_gap_s=0.2)
    for _ in range(6):  # a request every 50 ms: never a 0.2 s gap
        stage.rerank("busy", docs, first)
        time.sleep(0.05)
    assert scorer.calls == []  # nothing scored while requests kept coming
    stage.drain()  # quiet now
    assert sorted(d for _, d in scorer.calls) == ["alpha", "beta"]


def test_close_stops_the_background_thread_and_drops_queued_work():
    docs, first = _docs("alpha", "beta"), np.array([2.0, 1.0])
    scorer = ScriptedPairScorer({})
    stage = SecondStage(scorer, depth=2, mode="background", idle_gap_s=10.0)  # would wait 10 s for quiet
    stage.rerank("q", docs, first)
    worker = stage._worker
    t0 = time.monotonic()
    stage.close()
    assert not worker.is_alive() and time.monotonic() - t0 < 2 and scorer.calls == []
    stage.rerank("q2", docs, first)  # closed: nothing more is queued
    assert stage._queue.empty()


def test_queries_with_observed_clicks_keep_the_click_trained_ranking(tmp_path):
    svc, _ = _service(tmp_path, depth=3)
    first = svc.search("camping gear", arm="broad")
    assert first.ranker.endswith("+ce")
    svc.feedback("click", first.hits[1].product_id, first.decision_id)
    svc.settle()  # the memory refresh a click starts runs beside requests
    after = svc.search("camping gear", arm="broad")
    assert not after.ranker.endswith("+ce")  # shoppers' clicks now rank this query
    assert svc.search("camping gear", arm="broad", rerank=3).ranker.endswith("+ce")  # asked for: applied
    assert svc.search("warm sleeping bag", arm="broad").ranker.endswith("+ce")  # other queries: still on
    svc.sw.close()
    always, _ = _service(tmp_path / "always", depth=3, skip_clicked=False)
    first = always.search("camping gear", arm="broad")
    always.feedback("click", first.hits[1].product_id, first.decision_id)
    always.settle()
    assert always.search("camping gear", arm="broad").ranker.endswith("+ce")
    always.sw.close()


def _rerank_in_child(stage, docs, first, out) -> None:  # type: ignore[no-untyped-def]
    stage.rerank("child", docs, first)
    stage.drain()
    out.put(stage.rerank("child", docs, first)[0].tolist())


def test_a_forked_worker_gets_its_own_thread_and_lock():
    import multiprocessing as mp

    docs, first = _docs("alpha", "beta"), np.array([2.0, 1.0])
    stage = SecondStage(ScriptedPairScorer({"beta": 5.0}), depth=2, mode="background", idle_gap_s=0.0)
    stage._lock.acquire()  # held by "another thread" at the moment of the fork
    try:
        ctx = mp.get_context("fork")
        out = ctx.Queue()
        child = ctx.Process(target=_rerank_in_child, args=(stage, docs, first, out))
        child.start()
        child.join(timeout=20)
        if child.is_alive():  # deadlocked: do not leave it behind
            child.kill()
    finally:
        stage._lock.release()
    assert child.exitcode == 0 and out.get(timeout=5) == [1, 0]  # no deadlock; its own thread scored
