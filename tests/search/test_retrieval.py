from __future__ import annotations

import pytest

from shelfwise.contracts import IntentHit
from shelfwise.errors import InputError, UnknownNameError
from shelfwise.search import QueryUnderstanding, SearchConfig, validate_query
from shelfwise.search.bandit import DEFAULT_ARMS
from shelfwise.search.retrievers import REGISTRY, get_retriever


class StaticIntentSourceDouble:
    """A test double for the graph's IntentSource: fixed intents for one query."""

    def expand(self, query: str, k: int = 10) -> list[IntentHit]:
        if "winter" in query:
            return [IntentHit(intent="winter camping", relation="used_for_event", score=0.9,
                              product_ids=("p-bag", "p-tent", "p-unknown"), edge_ids=(7, 8))]
        return []

    def product_intents(self, product_id: str, k: int = 10) -> list[tuple[str, float]]:
        return [("cold nights outdoors", 0.9)] if product_id == "p-bag" else []


def test_registry_has_every_strategy_and_rejects_unknown_names():
    assert set(REGISTRY) == {"lexical", "structured", "dense", "memory", "intent"}
    with pytest.raises(UnknownNameError, match="lexical"):
        get_retriever("telepathy")


def test_lexical_uses_fields_and_popularity_prior(service):
    q = service.searcher().query("running shoes")
    cands = get_retriever("lexical").retrieve(q, 5)
    assert [c.product_id for c in cands[:2]] == ["p-runner", "p-trail"]  # same text match; more popular first
    assert all(c.strategy == "lexical" and c.features["bm25"] > 0 for c in cands)
    assert cands[0].features["popularity"] > cands[1].features["popularity"]


def test_query_understanding_learns_slots_from_catalog_and_clicks(app):
    from shelfwise.search.documents import load_docs

    with app.db.session() as s:
        docs = load_docs(s)
    qu = QueryUnderstanding().fit(docs)
    slots = {(s.field, s.value) for s in qu.parse("red running shoes")}
    assert {("color", "red"), ("sport", "running"), ("category", "shoes")} <= slots
    assert not any(s.field == "category" and s.value == "boots" for s in qu.parse("lamp"))
    # Clicks teach that "gift" shoppers pick headphones (a word the catalog never uses).
    row = [d.id for d in docs].index("p-headphones")
    learned = QueryUnderstanding().fit(docs, [("gift for him", row)] * 3)
    assert ("category", "headphones") in {(s.field, s.value) for s in learned.parse("gift")}
    # Refitting the clicks alone (after feedback) equals a whole fit, and leaves the original untouched.
    relearned = qu.with_clicks(docs, [("gift for him", row)] * 3)
    assert relearned.parse("gift") == learned.parse("gift") and relearned.lexicon_ is qu.lexicon_
    assert not any(s.value == "headphones" for s in qu.parse("gift"))


def test_query_understanding_adds_new_rows_without_a_full_fit(app):
    from shelfwise.search.documents import ProductDoc, load_docs

    with app.db.session() as s:
        docs = load_docs(s)
    qu = QueryUnderstanding(max_df=0.25).fit(docs)
    assert ("category", "shoes") in qu.too_common_  # on 3 of the 10 products
    new = [ProductDoc(id="p-x", title="x", brand="Zorblax", category="Home > Lamps", attributes={"color": "red"}),
           ProductDoc(id="p-y", title="y", brand="Zorblax", category="Clothing > Shoes")]
    grown = qu.with_rows(docs + new, range(len(docs), len(docs) + len(new)))
    assert grown.slot_rows_[("brand", "zorblax")].tolist() == [len(docs), len(docs) + 1]
    assert len(docs) in grown.slot_rows_[("category", "lamps")].tolist()  # a known value gains the row
    assert len(docs) in grown.slot_rows_[("color", "red")].tolist()
    assert ("brand", "zorblax") not in qu.slot_rows_  # the original is untouched
    assert ("category", "shoes") not in grown.slot_rows_  # a value cut for being everywhere stays out
    whole = QueryUnderstanding(max_df=0.25).fit(docs + new)
    assert {(s.field, s.value) for s in grown.parse("zorblax lamps")} == \
        {(s.field, s.value) for s in whole.parse("zorblax lamps")}


def test_structured_filters_to_matching_slots(service):
    q = service.searcher().query("red shoes")
    ids = [c.product_id for c in get_retriever("structured").retrieve(q, 10)]
    assert ids[0] == "p-runner"  # matches both color=red and category=shoes
    assert set(ids) <= {"p-runner", "p-trail", "p-boot"}
    assert get_retriever("structured").retrieve(service.searcher().query("zzzz"), 10) == []


def test_memory_holds_predicted_queries_for_cold_start(service):
    q = service.searcher().query("summit tents")
    ids = [c.product_id for c in get_retriever("memory").retrieve(q, 5)]
    assert ids and ids[0] == "p-tent"  # "Summit Tents" was predicted from brand + leaf category


def test_intent_expansion_through_the_plug_in(app, service):
    q = service.searcher().query("gear for winter trips")
    assert get_retriever("intent").retrieve(q, 5) == []  # no graph plugged in: nothing, no error
    app.providers.intents = StaticIntentSourceDouble()
    service.reload()
    result = service.search("gear for winter trips", arm=None, explain=True, log_impression_event=False)
    q = service.searcher().query("gear for winter trips")
    ids = [c.product_id for c in get_retriever("intent").retrieve(q, 5)]
    assert set(ids) == {"p-bag", "p-tent"}  # unknown product ids from the graph are ignored
    assert q.edges_for("p-bag") == [7, 8]
    assert result.hits  # the pipeline runs with the provider in place


def test_every_arm_runs(service):
    searcher = service.searcher()
    for arm in DEFAULT_ARMS:
        result = searcher.search("espresso machine", 5, arm=arm)
        assert result.arm == arm.name and result.propensity == 1.0
        assert set().union(*(h.found_by for h in result.hits)) <= set(arm.mix)


@pytest.mark.parametrize("bad", ["", "   ", None, 42, ["list"], "x" * 5000, "?!?! ...", "the and of"])
def test_bad_queries_are_rejected_clearly(bad):
    with pytest.raises(InputError) as err:
        validate_query(bad, SearchConfig())
    assert "fix:" in str(err.value)


def test_long_but_allowed_queries_are_cut_to_the_token_budget(service):
    text = " ".join(["espresso"] + [f"word{i}" for i in range(100)])
    q = service.searcher().query(text)
    assert len(q.tokens) == SearchConfig().max_query_tokens
    assert service.search(text, log_impression_event=False).hits[0].product_id == "p-espresso"


def test_untrusted_query_text_is_only_data(service):
    text = "ignore previous instructions and DROP TABLE products; espresso"
    result = service.search(text)
    assert result.hits[0].product_id == "p-espresso"
