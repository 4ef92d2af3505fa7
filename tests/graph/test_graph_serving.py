"""The stored graph (SQLite and PostgreSQL), serving cache, IntentSource, navigation, recommendation."""

from __future__ import annotations

import json

import pytest

from shelfwise.contracts import IntentSource
from shelfwise.errors import InputError, NotFoundError
from shelfwise.graph import GraphStore, navigation_tree, recommend, register
from shelfwise.graph.cascade import CandView
from shelfwise.graph.navigate import SessionInput, read_session
from shelfwise.graph.serving import IntentCache


def _kept(i, head, pids, tail, relation="used_for_event", query=None, typ=0.8):
    return CandView(id=i, pair_key=head, kind="search_buy" if query else "co_buy", query=query, product_ids=pids,
                    relation=relation, tail=tail, scores={"plausibility": 0.9, "typicality": typ}, stage="kept")


def _fill(db):
    with db.session() as s:
        store = GraphStore(s)
        store.add_edges([
            _kept(1, "search_buy:camping|bag-1", ["bag-1"], "winter camping", query="camping"),
            _kept(2, "co_buy:boot-1|mat-1", ["boot-1", "mat-1"], "winter camping"),
            _kept(3, "co_buy:boot-1|mat-1", ["boot-1", "mat-1"], "winter camping"),  # same edge: support 2
            _kept(4, "search_buy:camping|tent-1", ["tent-1"], "family camping", query="camping"),
            _kept(5, "search_buy:coffee|cof-1", ["cof-1"], "morning energy", relation="cause", query="coffee"),
        ])


def test_edges_share_intents_and_answer_queries(any_db):
    _fill(any_db)
    with any_db.session() as s:
        store = GraphStore(s)
        st = store.stats()
        assert st["intents"] == 3 and st["edges"] == 4 and st["products"] == 5
        edge = next(e for e in store.edges() if e["head"] == "co_buy:boot-1|mat-1")
        assert edge["support"] == 2 and edge["product_ids"] == ["boot-1", "mat-1"] and edge["typicality"] == 0.8
        assert [p for p, _ in store.products_of_intent("Winter Camping")] == ["boot-1", "mat-1", "bag-1"]
        assert store.intents_of_product("mat-1")[0][0] == "winter camping"
        assert store.neighbours("product:bag-1", depth=2) == ["intent:winter camping", "product:boot-1",
                                                               "product:mat-1"]
        with pytest.raises(NotFoundError):
            store.products_of_intent("time travel")
        with pytest.raises(NotFoundError):
            store.neighbours("product:nope")


def test_cache_miss_never_computes_then_batch_fills_tier2(gsw):
    _fill(gsw.db)
    cache = IntentCache(gsw.db, gsw.embedder)
    hits, where = cache.get("Camping")
    assert (hits, where) == ([], "miss")
    assert cache.stats()["pending"] == 1
    assert cache.fill_misses() == 1
    hits, where = cache.get("camping")
    assert where == "tier2" and {h.intent for h in hits} >= {"winter camping", "family camping"}
    assert "bag-1" in next(h for h in hits if h.intent == "winter camping").product_ids
    cache.warm(["coffee"])
    assert cache.get("coffee")[1] == "tier1" and cache.get("coffee")[0][0].intent == "morning energy"
    reloaded = IntentCache(gsw.db, gsw.embedder).load()  # tiers survive a restart
    assert reloaded.get("coffee")[1] == "tier1" and reloaded.get("camping")[1] == "tier2"


def test_register_provides_intent_source_and_features(gsw):
    _fill(gsw.db)
    source = register(gsw)
    assert gsw.providers.intents is source and isinstance(source, IntentSource)
    assert source.expand("camping") == []  # not cached yet: empty, never blocking
    source.cache.warm(["camping"])
    assert source.expand("camping", k=1)[0].intent in {"winter camping", "family camping"}
    assert source.product_intents("mat-1")[0][0] == "winter camping"
    feats = source.features.ranking_features("camping", "bag-1", "sleeping bag")
    assert feats["intent_match"] > 0 and feats["intent_tags"] == 1.0
    assert source.features.query_type_scores("camping")


def test_navigation_tree_and_recommendation(gsw, tmp_path):
    _fill(gsw.db)
    tree = navigation_tree(gsw.db, gsw.embedder, "camping")
    intents = [c.label for c in tree.children]
    assert "winter camping" in intents
    winter = tree.children[intents.index("winter camping")]
    types = {c.label for c in winter.children}
    assert "air mattress" in types or "sleeping bag" in types
    refinements = {r.label for c in winter.children for r in c.children}
    assert refinements & {"18-inch", "0-degree"}
    with pytest.raises(InputError):
        navigation_tree(gsw.db, gsw.embedder, "  ")

    source = register(gsw)
    out = recommend(gsw.db, source, SessionInput(product_ids=["bag-1"]), k=3)
    assert out["intents"][0][0] == "winter camping"
    assert [r["product_id"] for r in out["recommendations"]][:2] == ["boot-1", "mat-1"]
    assert all(r["product_id"] != "bag-1" for r in out["recommendations"])
    with pytest.raises(InputError):
        recommend(gsw.db, source, SessionInput())
    path = tmp_path / "s.jsonl"
    path.write_text(json.dumps({"product_id": "bag-1"}) + "\n" + json.dumps({"query": "camping"}) + "\n")
    assert read_session(path) == SessionInput(product_ids=["bag-1"], queries=["camping"])
    path.write_text("{broken")
    with pytest.raises(InputError):
        read_session(path)
