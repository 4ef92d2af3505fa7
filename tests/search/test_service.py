from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from sqlalchemy import select

from shelfwise.errors import InputError, UnknownNameError
from shelfwise.search import SearchContext
from shelfwise.search.memory import record_interaction
from shelfwise.search.models import MemoryEntry
from shelfwise.store import EventLog
from shelfwise.store.events import CustomerReturn


def _observed(app, product_id):
    with app.db.session() as s:
        return s.scalar(select(MemoryEntry.score).where(MemoryEntry.product_id == product_id,
                                                        MemoryEntry.source == "observed"))


def test_every_search_is_logged_with_its_decision_and_propensity(service, app):
    result = service.search("espresso", k=3, context=SearchContext(user_segment="pro"))
    with app.db.session() as s:
        (stored,) = list(EventLog(s).read("search_impression"))
    ev = stored.event
    assert ev.decision_id == result.decision_id and ev.product_ids == result.product_ids
    assert ev.propensity == pytest.approx(result.propensity) and 0 < ev.propensity <= 1
    assert ev.action["arm"] == result.arm and ev.action["mix"] == result.mix
    assert ev.context["segment"] == "pro" and ev.user_segment == "pro"
    with pytest.raises(UnknownNameError):
        service.search("espresso", arm="no-such-mix")


def test_feedback_updates_the_memory_index_and_search(service, app):
    result = service.search("gift idea", arm="broad")
    target = result.hits[-1].product_id
    service.feedback("click", target, result.decision_id)
    service.feedback("purchase", target, result.decision_id, position=len(result.hits) - 1)
    service.settle()  # the request after feedback does not wait for the memory refresh; settle does
    assert _observed(app, target) == pytest.approx(5.0)  # click 1 + purchase 4
    again = service.search("gift idea", arm="memory-led", explain=True, log_impression_event=False)
    assert again.hits[0].product_id == target
    assert again.hits[0].features["memory_observed"] > 0
    with app.db.session() as s:
        kinds = [e.event.type for e in EventLog(s).read(["click", "purchase"])]
    assert kinds == ["click", "purchase"]


@pytest.mark.parametrize("case", ["unknown_product", "no_decision", "not_shown", "wrong_position", "kind"])
def test_impossible_feedback_is_rejected_logged_and_not_stored(service, app, caplog, case):
    result = service.search("running shoes", k=2)
    shown = result.hits[0].product_id
    args = {"unknown_product": ("click", "p-nope", result.decision_id, None),
            "no_decision": ("click", shown, "decision-that-never-happened", None),
            "not_shown": ("click", "p-charger", result.decision_id, None),
            "wrong_position": ("click", shown, result.decision_id, 5),
            "kind": ("return", shown, result.decision_id, None)}[case]
    with caplog.at_level(logging.WARNING, logger="shelfwise.search"), pytest.raises(InputError) as err:
        service.feedback(args[0], args[1], args[2], position=args[3])
    assert "fix:" in str(err.value)
    assert "feedback rejected" in caplog.text
    with app.db.session() as s:
        assert EventLog(s).count("click") == 0
        assert s.scalar(select(MemoryEntry).where(MemoryEntry.source == "observed")) is None


def test_learn_replays_decisions_returns_and_trains_the_ranker(service, app):
    for query in ["espresso", "coffee grinder", "running shoes", "camping tent", "headphones"]:
        result = service.search(query, k=5)
        service.feedback("click", result.hits[0].product_id, result.decision_id)
    result = service.search("winter sleeping bag", k=5)
    bag = result.hits[0].product_id
    service.feedback("purchase", bag, result.decision_id)
    with app.db.session() as s:
        EventLog(s).append(CustomerReturn(product_id=bag, decision_id=result.decision_id, reason="too small"))
    before = _observed(app, bag)
    report = service.learn(feedback_window=timedelta(0))
    assert report["returns"] == 1 and _observed(app, bag) < before
    assert report["bandit_updates"] == 6 and service.searcher().bandit.counts_.sum() == 6
    assert report["ranker_queries"] >= 2
    assert service.search("espresso", log_impression_event=False).ranker == "ltr"
    assert service.learn(feedback_window=timedelta(0))["bandit_updates"] == 0  # each decision learned once
    service.reload()
    assert service.searcher().bandit.counts_.sum() == 6  # persisted
    assert service.searcher().ranker is not None


def test_decisions_inside_the_feedback_window_wait(service):
    service.search("espresso")
    assert service.learn(feedback_window=timedelta(hours=1), retrain_ranker=False)["bandit_updates"] == 0


def test_train_ranker_from_judgements(service):
    report = service.train_ranker({"espresso machine": {"p-espresso": 3, "p-grinder": 1, "p-beans": 0},
                                   "running shoes": {"p-runner": 3, "p-trail": 2, "p-boot": 1}})
    assert report["queries"] == 2
    assert service.search("espresso machine").ranker == "ltr"
    with pytest.raises(InputError):
        service.train_ranker({"espresso": {"p-espresso": 0}})


def test_memory_table_on_every_database(any_db):
    from datetime import datetime

    with any_db.session() as s:
        t0 = datetime(2026, 1, 1)
        assert record_interaction(s, "Red Shoes", "p1", "purchase", half_life_days=10, now=t0) == 4.0
        # Ten days later (one half-life) a click: 4 * 0.5 + 1.
        assert record_interaction(s, "shoes red", "p1", "click", half_life_days=10,
                                  now=t0 + timedelta(days=10)) == pytest.approx(3.0)
        assert record_interaction(s, "red shoes", "p1", "customer_return", half_life_days=10,
                                  now=t0 + timedelta(days=10)) == 0.0  # never negative
        assert s.scalar(select(MemoryEntry.events).where(MemoryEntry.product_id == "p1")) == 3


# -- several worker processes on one index (uvicorn --workers N): two services stand in for two processes --
def _catalog(app, *listings):
    from shelfwise.store import Catalog, Listing

    with app.db.session() as s:
        for item in listings:
            Catalog(s).upsert(Listing.model_validate(item), source="test")


QUOKKA = {"id": "p-bag", "title": "Quokka sleeping bag", "brand": "Summit", "category_path": "Sports > Camping"}
WOMBAT = {"id": "p-boot", "title": "Wombat hiking boots", "brand": "Summit", "category_path": "Clothing > Boots"}


def _top(svc, query):
    ids = svc.search(query, k=1, arm="lexical", log_impression_event=False).product_ids
    return ids[0] if ids else None


def test_an_upsert_keeps_what_another_worker_saved(app):
    from shelfwise.search import SearchService

    a, b = SearchService(app), SearchService(app)  # default check interval: b does not look before its upsert
    a.build_index()
    _top(b, "camping")  # b has its copy loaded
    _catalog(app, QUOKKA, WOMBAT)
    a.upsert("p-bag")
    b.upsert("p-boot")  # reloads the newest index under the lock first, so a's change survives
    fresh = SearchService(app)
    assert _top(fresh, "quokka") == "p-bag" and _top(fresh, "wombat") == "p-boot"


def test_a_worker_sees_another_workers_update_and_models_after_its_check_interval(app):
    from shelfwise.search import SearchConfig, SearchService

    a, b = SearchService(app), SearchService(app, SearchConfig(reload_check_seconds=0))
    a.build_index()
    assert _top(b, "quokka") != "p-bag"
    _catalog(app, QUOKKA)
    a.upsert("p-bag")
    b.searcher()  # notices the save; reloads it in the background while requests get the loaded copy
    b.settle()
    assert _top(b, "quokka") == "p-bag"
    a.train_ranker({"espresso machine": {"p-espresso": 3, "p-grinder": 1},
                    "running shoes": {"p-runner": 3, "p-trail": 2}})
    b.searcher()
    b.settle()
    assert b.search("espresso machine", log_impression_event=False).ranker == "ltr"


def test_another_workers_single_product_changes_are_applied_not_reloaded(app, monkeypatch):
    from shelfwise.search import SearchConfig, SearchIndex, SearchService
    from shelfwise.store import Catalog

    a, b = SearchService(app), SearchService(app, SearchConfig(reload_check_seconds=0))
    a.build_index()
    _top(a, "camping"), _top(b, "camping")  # both workers have the index loaded
    loaded = b.searcher().index
    monkeypatch.setattr(SearchIndex, "load", lambda *a, **k: pytest.fail("a journaled change caused a full load"))
    _catalog(app, QUOKKA, WOMBAT)
    a.upsert("p-bag")
    b.searcher()
    b.settle()
    assert b.searcher().index is loaded and _top(b, "quokka") == "p-bag"
    # b's memory and query understanding learnt the new row too (predicted queries, the brand as a slot)
    q = b.searcher().query("summit sleeping bags")
    assert ("brand", "summit") in {(s.field, s.value) for s in q.slots}
    assert q.memory[0][loaded.row_of["p-bag"]] > 0
    with app.db.session() as s:
        Catalog(s).delete("p-bag")
    assert a.upsert("p-bag") == "removed"
    a.upsert("p-boot")
    b.searcher()
    b.settle()
    assert b.searcher().index is loaded and _top(b, "quokka") is None and _top(b, "wombat") == "p-boot"


def test_a_request_never_waits_for_another_workers_lock(app):
    import threading

    from shelfwise.search import SearchConfig, SearchService

    a, b = SearchService(app), SearchService(app, SearchConfig(reload_check_seconds=0))
    a.build_index()
    _top(b, "camping")
    _catalog(app, QUOKKA)
    a.upsert("p-bag")  # a save b has not loaded yet
    held, release = threading.Event(), threading.Event()

    def train_for_a_while() -> None:  # another worker holding the index lock (a long training, a rebuild)
        with a._lock.hold():
            held.set()
            release.wait(10)

    writer = threading.Thread(target=train_for_a_while)
    writer.start()
    assert held.wait(5)
    answered: list[str | None] = []
    request = threading.Thread(target=lambda: answered.append(_top(b, "quokka")))
    request.start()
    request.join(5)
    try:
        assert answered, "a search waited for another worker's lock"
    finally:
        release.set()
        writer.join()
    b.settle()
    assert _top(b, "quokka") == "p-bag", "the save is picked up once the lock is free"


def test_the_request_path_only_looks_at_the_disk_once_per_interval(app, monkeypatch):
    import os

    from shelfwise.search import SearchConfig, SearchService

    svc = SearchService(app, SearchConfig(reload_check_seconds=3600))
    svc.build_index()
    svc.search("espresso", log_impression_event=False)
    calls = []
    real_stat = os.stat
    monkeypatch.setattr(os, "stat", lambda *a, **k: calls.append(a) or real_stat(*a, **k))
    for _ in range(20):
        svc.searcher()
    assert calls == []


def test_a_broken_ranker_fails_search_with_the_command_but_not_learning_or_indexing(service, app):
    from shelfwise.errors import IndexStateError
    from shelfwise.search import SearchService

    service.train_ranker({"espresso machine": {"p-espresso": 3, "p-grinder": 1},
                          "running shoes": {"p-runner": 3, "p-trail": 2}})
    (service.directory / "ranker.json").write_text("nope")
    svc = SearchService(app)
    with pytest.raises(IndexStateError, match="shelfwise search-learn"):
        svc.search("espresso")
    assert svc.sync()["updated"] == 0
    svc.learn(feedback_window=timedelta(0))
    svc.train_ranker({"espresso machine": {"p-espresso": 3, "p-grinder": 1},
                      "running shoes": {"p-runner": 3, "p-trail": 2}})
    assert svc.search("espresso", log_impression_event=False).ranker == "ltr"


def test_upsert_of_an_unknown_product_is_not_found_and_a_deleted_one_is_removed(service, app):
    from shelfwise.errors import NotFoundError
    from shelfwise.store import Catalog

    with pytest.raises(NotFoundError, match="does-not-exist"):
        service.upsert("does-not-exist")
    with app.db.session() as s:
        Catalog(s).delete("p-bag")
    assert service.upsert("p-bag") == "removed"
    assert "p-bag" not in service.search("sleeping bag", log_impression_event=False).product_ids


def test_an_index_path_taken_by_a_file_is_an_index_state_error(app):
    from shelfwise.errors import IndexStateError
    from shelfwise.search import SearchService

    svc = SearchService(app)
    svc.directory.parent.mkdir(parents=True, exist_ok=True)
    svc.directory.write_text("x")
    with pytest.raises(IndexStateError, match="--rebuild"):
        svc.build_index()


@pytest.mark.parametrize("segment", ["x" * 5000, "\ud800", "a\nb"])
def test_odd_user_segments_are_refused(service, segment):
    with pytest.raises(InputError, match="segment"):
        service.search("espresso", context=SearchContext(user_segment=segment))


def test_nul_characters_are_dropped_from_queries(service, app):
    result = service.search("\x00espresso\x00")
    assert result.query == "espresso"
    with app.db.session() as s:
        (stored,) = list(EventLog(s).read("search_impression"))
    assert stored.event.query == "espresso"
