from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import select

from shelfwise.errors import InputError
from shelfwise.search.models import MemoryEntry
from shelfwise.store import EventLog


def _score(app, product_id):
    with app.db.session() as s:
        return s.scalar(select(MemoryEntry.score).where(MemoryEntry.product_id == product_id,
                                                        MemoryEntry.source == "observed"))


def test_replayed_feedback_returns_the_first_event_and_adds_no_weight(service, app):
    result = service.search("espresso machine", k=5)
    last = result.hits[-1].product_id
    ids = {service.feedback("purchase", last, result.decision_id) for _ in range(5)}
    assert len(ids) == 1 and _score(app, last) == pytest.approx(4.0)  # one purchase, not five
    service.feedback("click", last, result.decision_id)  # another kind of feedback still counts
    assert _score(app, last) == pytest.approx(5.0)
    with app.db.session() as s:
        assert EventLog(s).count("purchase") == 1 and EventLog(s).count("click") == 1


def test_add_to_cart_is_accepted_in_the_cli_spelling(service):
    result = service.search("espresso machine", k=3)
    assert service.feedback("add-to-cart", result.hits[0].product_id, result.decision_id) > 0


@pytest.mark.parametrize("field", ["product_id", "decision_id"])
def test_ids_that_are_not_text_are_rejected_not_crashing(service, field):
    result = service.search("espresso machine", k=3)
    args = {"product_id": result.hits[0].product_id, "decision_id": result.decision_id, field: "\ud800x"}
    with pytest.raises(InputError, match="not valid text"):
        service.feedback("click", args["product_id"], args["decision_id"])


@pytest.mark.parametrize("quantity", [0, 10**30])
def test_purchase_quantity_is_bounded(service, quantity):
    result = service.search("espresso machine", k=3)
    with pytest.raises(InputError, match="quantity"):
        service.feedback("purchase", result.hits[0].product_id, result.decision_id, quantity=quantity)


def test_a_click_reloads_only_the_observed_memory(service, app, monkeypatch):
    """After feedback the memory refresh reloads the clicks, not every product's predicted queries (a pass
    over the catalog), beside the requests rather than in front of one."""
    from shelfwise.search import signals

    result = service.search("espresso machine", k=5)
    last = result.hits[-1].product_id
    loads: list[str | None] = []
    real_read = signals.read_entries

    def counting_read(session, source=None, product_ids=None):
        loads.append(source)
        return real_read(session, source, product_ids)

    monkeypatch.setattr(signals, "read_entries", counting_read)
    service.feedback("click", last, result.decision_id)
    service.searcher()  # the next request: served at once, the refresh runs beside it
    service.settle()
    q = service.searcher().query("espresso machine")
    row = service.searcher().index.row_of[last]
    assert loads == ["observed"]
    assert q.memory[1][row] > 0  # the observed layer holds the click


def test_layered_memory_equals_one_memory_over_both_sources(service, app):
    from shelfwise.search.memory import LayeredMemory, MemoryIndex

    result = service.search("espresso machine", k=5)
    for hit in result.hits[:3]:
        service.feedback("click", hit.product_id, result.decision_id)
    service.feedback("purchase", result.hits[0].product_id, result.decision_id)
    index = service.searcher().index
    args = {"half_life_days": 30.0, "predicted_weight": 0.3}
    with app.db.session() as s:
        whole = MemoryIndex.load(s, index.row_of, len(index.docs), **args)
        layers = LayeredMemory([MemoryIndex.load(s, index.row_of, len(index.docs), source="predicted", **args)],
                               MemoryIndex.load(s, index.row_of, len(index.docs), source="observed", **args))
    for query in ("espresso machine", "espresso", "summit tents", "nothing like it"):
        for got, want in zip(layers.lookup(query), whole.lookup(query), strict=True):
            assert np.allclose(got, want, atol=1e-6)
        assert layers.has_observed(query) == whole.has_observed(query)
    assert whole.lookup("espresso machine")[1].max() > 0


def test_an_upsert_refreshes_memory_and_understanding_from_the_new_rows_only(service, app):
    """The request after an upsert reads the new product's predicted queries and values, not the catalog's;
    the product is found by them at once. Renumbered rows (a merge of the BM25 delta) force a full pass."""
    from shelfwise.search.retrievers import get_retriever
    from shelfwise.store import Catalog, Listing

    service.search("espresso machine", k=3)
    passes = service._signals.full_passes
    with app.db.session() as s:
        Catalog(s).upsert(Listing(id="p-yurt", title="Four season yurt", brand="Zorblax",
                                  category_path="Sports > Yurts", attributes={"material": "felt"}), source="test")
    service.upsert("p-yurt")
    service.searcher()
    service.settle()
    q = service.searcher().query("zorblax yurts")
    assert service._signals.full_passes == passes
    assert [c.product_id for c in get_retriever("memory").retrieve(q, 3)][:1] == ["p-yurt"]  # predicted query
    slots = {(slot.field, slot.value) for slot in q.slots}
    assert {("brand", "zorblax"), ("category", "yurts")} <= slots  # values new to the lexicon
    assert [c.product_id for c in get_retriever("structured").retrieve(q, 3)][:1] == ["p-yurt"]
    service.searcher().index.compact()
    service._memory_stale = True
    service.settle()
    assert service._signals.full_passes == passes + 1


def test_the_request_after_a_click_does_not_wait_for_the_memory_refresh(service, monkeypatch):
    import threading

    from shelfwise.search.signals import ShopperSignals

    result = service.search("espresso machine", k=3)
    entered, release = threading.Event(), threading.Event()
    real_refresh = ShopperSignals.refresh

    def slow_refresh(self, index):
        entered.set()
        release.wait(10)
        return real_refresh(self, index)

    monkeypatch.setattr(ShopperSignals, "refresh", slow_refresh)
    service.feedback("click", result.hits[0].product_id, result.decision_id)
    answered = []
    request = threading.Thread(target=lambda: answered.append(service.search("espresso machine", k=3)))
    request.start()
    request.join(5)
    try:
        assert entered.wait(5) and answered, "a search waited for the memory refresh"
    finally:
        release.set()
    service.settle()
    assert service.searcher().memory.has_observed("espresso machine")


def test_train_ranker_reads_memory_with_the_latest_feedback(service):
    result = service.search("espresso machine", k=3)
    service.feedback("click", result.hits[0].product_id, result.decision_id)
    service.train_ranker({"espresso machine": {"p-espresso": 3, "p-grinder": 1},
                          "running shoes": {"p-runner": 3, "p-trail": 2}})
    assert service.searcher().memory.has_observed("espresso machine")  # refreshed in line, before training


def test_a_refresh_finishing_after_a_swap_reaches_the_searcher_requests_get(service):
    from shelfwise.search.pipeline import Searcher

    result = service.search("espresso machine", k=3)
    old = service.searcher()
    service.feedback("click", result.hits[0].product_id, result.decision_id)
    # a reload swapped in a new searcher over the same index (another worker saved its ranker), keeping the
    # memory the old one had, while a refresh for the old one was in flight
    swapped = Searcher(old.index, old.embedder, config=old.config, memory=old.memory,
                       understanding=old.understanding)
    service._searcher = swapped
    service._refresh_memory(old)
    assert swapped.memory.has_observed("espresso machine")


def test_a_slow_memory_refresh_holds_off_neither_updates_nor_queries(service, monkeypatch):
    """The refresh copies the index's rows under its read lock and fits outside it: an update (a writer) and
    the queries queued behind it do not wait for a full pass over the catalog."""
    import threading
    import time

    from shelfwise.search.documents import ProductDoc
    from shelfwise.search.understanding import QueryUnderstanding

    searcher = service.searcher()
    fitting, real_fit = threading.Event(), QueryUnderstanding.fit

    def slow_fit(self, docs, clicks=()):
        fitting.set()
        time.sleep(1.0)
        return real_fit(self, docs, clicks)

    monkeypatch.setattr(QueryUnderstanding, "fit", slow_fit)
    service._signals._full = None  # the next refresh makes a full pass
    refresh = threading.Thread(target=service._signals.refresh, args=(searcher.index,))
    refresh.start()
    assert fitting.wait(5)
    t0 = time.perf_counter()
    searcher.index.upsert(ProductDoc(id="p-kayak", title="Carbon fibre kayak paddle"), searcher.embedder)
    searcher.search("kayak", 3)
    waited = time.perf_counter() - t0
    refresh.join()
    assert waited < 0.5, f"an update and a query waited {waited:.2f} s for the memory refresh"
