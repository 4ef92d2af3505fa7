"""Versions, rollback, statuses, counters, budgeted relevance, normalisers, promote, synthesis, tree."""

import pytest
from sqlalchemy import select

import shelfwise.enrich.kb as kbmod
from shelfwise.enrich.kb import Evidence, KnowledgeBase, LearningDraft
from shelfwise.errors import InputError, NotFoundError
from shelfwise.store.models import EventRow

COFFEE = "Grocery > Coffee"


def d(text, path=COFFEE, attribute="brand", **kw):
    return LearningDraft(category_path=path, attribute=attribute, text=text, **kw)


def test_public_api_is_exported():
    assert kbmod.__all__ and all(hasattr(kbmod, n) for n in kbmod.__all__)
    assert {"KnowledgeBase", "LearningDraft", "LearningView", "Evidence", "Placement"} <= set(kbmod.__all__)


def test_every_change_is_versioned_and_rollback_restores(kb, session):
    lid = kb.add(d("Brand is the first words of the title before the product line.")).learning_id
    kb.edit(lid, text="Brand is the maker's name, usually first in the title.", actor="alice", reason="clearer")
    kb.edit(lid, normalize={"gmcr": "Green Mountain Coffee Roasters"}, actor="alice")
    hist = kb.history(lid)
    assert [h.version for h in hist] == [1, 2, 3] and [h.action for h in hist] == ["created", "edited", "edited"]
    assert hist[1].actor == "alice" and hist[1].reason == "clearer"
    restored = kb.rollback(lid, 1, actor="bob")
    assert restored.version == 4 and restored.text.startswith("Brand is the first words") and restored.normalize == {}
    assert kb.history(lid)[-1].action == "rolled_back" and len(kb.history(lid)) == 4  # history never shrinks
    with pytest.raises(InputError, match="no earlier version"):
        kb.rollback(lid, 9)
    actions = [r.payload["action"] for r in session.scalars(select(EventRow).where(EventRow.type == "learning_change"))]
    assert actions == ["created", "edited", "edited", "rolled_back"]


def test_status_flow_and_guards(kb):
    lid = kb.add(d("Ignore size words when picking the brand."), status="proposed").learning_id
    assert kb.relevant(COFFEE, ["brand"]) == []  # proposed learnings are not injected
    assert kb.approve(lid).status == "active"
    assert [v.id for v in kb.relevant(COFFEE, ["brand"])] == [lid]
    with pytest.raises(InputError, match="not proposed"):
        kb.approve(lid)
    with pytest.raises(InputError, match="reason"):
        kb.retire(lid, "  ")
    assert kb.retire(lid, "superseded").status == "retired"
    assert kb.relevant(COFFEE, ["brand"]) == []
    assert kb.rollback(lid, 2).status == "active"  # back to the approved version
    with pytest.raises(InputError, match="status"):
        kb.add(d("Anything at all here."), status="retired")
    with pytest.raises(NotFoundError, match="kb list"):
        kb.get(12345)
    with pytest.raises(InputError, match="nothing to edit"):
        kb.edit(lid)
    with pytest.raises(InputError, match="empty segment"):
        kb.add(d("Anything at all here.", path="Grocery >  > Coffee"))


def test_feedback_learning_needs_a_person(kb):
    lid = kb.add(d("Brand is X.", evidence=[Evidence(kind="feedback", event_id=3)])).learning_id
    assert kb.get(lid).status == "proposed" and kb.get(lid).origin == "feedback"
    with pytest.raises(InputError, match="person"):
        kb.approve(lid, actor="supervisor")
    assert kb.approve(lid, actor="carol").status == "active"


def test_relevant_is_most_specific_first_and_within_budget(kb):
    root = kb.add(d("Never copy marketing adjectives into any attribute.", path="", attribute=None)).learning_id
    grocery = kb.add(d("In Grocery, brand is never a flavour word.", path="Grocery")).learning_id
    coffee = kb.add(d("In Coffee, K-Cup is not a brand.")).learning_id
    general = kb.add(d("In Coffee, roast words describe roast, not flavour.", attribute=None)).learning_id
    kb.add(d("Shoes: size 9 M is US sizing.", path="Shoes", attribute="size"))
    kb.add(d("In Coffee, roast is light, medium or dark.", attribute="roast"))
    got = kb.relevant("grocery > coffee > pods", ["brand"])  # a deeper product path, any casing
    assert [v.id for v in got] == [coffee, general, grocery, root]
    small = kb.relevant(COFFEE, ["brand"], max_tokens=30)
    costs = [len(v.prompt_text()) // 4 for v in small]
    assert small and sum(costs) <= 30 and len(small) < 4
    assert [v.id for v in kb.relevant(COFFEE, ["brand"], max_items=1)] == [coffee]


def test_normalizers_deeper_wins_and_canonical_maps_to_itself(kb):
    kb.add(d("Pods are an item form.", path="Grocery", attribute="item_form", normalize={"pod": "Pod", "kcup": "Pod"}))
    kb.add(d("K-Cup is its own item form in Coffee.", attribute="item_form", normalize={"KCup": "K-Cup"}))
    norm = kb.normalizers(COFFEE, "item_form")
    assert norm["kcup"] == "K-Cup" and norm["pod"] == "Pod" and norm["k cup"] == "K-Cup"
    assert kb.normalizers("Grocery > Tea", "item_form")["kcup"] == "Pod"


def test_counters_are_atomic_increments(kb):
    a = kb.add(d("Rule A about brands in coffee.")).learning_id
    b = kb.add(d("Rule B is about roast levels.", attribute="roast")).learning_id
    kb.record_injection([a, b, a])
    kb.record_outcome([a], disagreed=True)
    kb.record_outcome([a, b], disagreed=False)
    kb.session.expire_all()
    va, vb = kb.get(a), kb.get(b)
    assert (va.times_injected, va.disagreements_after, va.agreements_after) == (2, 1, 1)
    assert (vb.times_injected, vb.disagreements_after, vb.agreements_after) == (1, 0, 1)


def test_promote_staging_to_production_is_idempotent(session, embedder):
    staging = KnowledgeBase(session, embedder=embedder, space="staging")
    a = staging.add(d("In Coffee, K-Cup is the item form.", attribute="item_form")).learning_id
    staging.add(d("Pending idea about brands.", attribute="brand"), status="proposed")
    b = staging.add(d("Brand is the roaster's name.")).learning_id
    prod = KnowledgeBase(session, embedder=embedder, space="production")
    assert prod.list() == []
    first = staging.promote("staging", "production")
    assert sorted(p.action for p in first) == ["created", "created"]
    assert {v.text for v in prod.list(status="active")} == {"In Coffee, K-Cup is the item form.",
                                                           "Brand is the roaster's name."}
    assert all(p.action == "skipped" for p in staging.promote())
    staging.retire(b, "wrong")
    staging.edit(a, text="In Coffee, K-Cup is the item form (a pod).")
    staging.promote()
    texts = {v.text: v.status for v in prod.list()}
    assert texts == {"In Coffee, K-Cup is the item form (a pod).": "active", "Brand is the roaster's name.": "retired"}
    with pytest.raises(NotFoundError):
        prod.get(a)  # ids are per space


def test_synthesis_lifts_a_repeated_pattern_and_keeps_rare_and_critical(session, embedder):
    kb = KnowledgeBase(session, embedder=embedder)
    ids = [kb.add(d(f"Count packs: '{n} count' is the pack size, not the weight.", path=f"Grocery > {cat}",
                    attribute="pack_size", normalize={f"{n} count": f"{n}"})).learning_id
           for n, cat in ((72, "Coffee"), (24, "Tea"), (12, "Snacks"))]
    rare = kb.add(d("Snacks: 'family size' is marketing, ignore it.", path="Grocery > Snacks",
                    attribute="pack_size")).learning_id
    crit = kb.add(d("Tea: never infer caffeine content.", path="Grocery > Tea", attribute="pack_size",
                    critical=True)).learning_id
    placements = kb.synthesize()
    lifted = [p for p in placements if p.action == "created"]
    assert len(lifted) == 1 and lifted[0].path == "Grocery"
    broad = kb.get(lifted[0].learning_id)
    assert broad.status == "active" and broad.support == 3 and broad.origin == "synthesis"
    assert broad.normalize == {"72 count": "72", "24 count": "24", "12 count": "12"}
    assert all(kb.get(i).status == "retired" for i in ids)
    assert kb.get(rare).status == "active" and kb.get(crit).status == "active"
    assert [v.id for v in kb.relevant("Grocery > Coffee", ["pack_size"])] == [broad.id]


def test_node_size_limit_compacts_similar_learnings(session, embedder):
    from shelfwise.enrich.kb import KBConfig

    kb = KnowledgeBase(session, embedder=embedder, config=KBConfig(max_per_node=3, duplicate_similarity=0.99))
    for word in ("light", "medium", "dark", "blonde"):
        kb.add(d(f"Roast words like {word} roast describe the roast level of the coffee beans.", attribute="roast"))
    active = kb.list(status="active", attribute="roast")
    assert len(active) < 4 and max(v.support for v in active) >= 2


def test_tree_groups_by_path(kb):
    kb.add(d("Root rule for every product.", path="", attribute=None))
    kb.add(d("Coffee brand rule number one."))
    kb.add(d("Shoe size rule number one.", path="Shoes", attribute="size"))
    root = kb.tree()
    assert root.count() == 3 and len(root.learnings) == 1
    assert sorted(c.name for c in root.children) == ["Grocery", "Shoes"]
    grocery = next(c for c in root.children if c.name == "Grocery")
    assert grocery.children[0].path == COFFEE and grocery.children[0].learnings[0].attribute == "brand"


def test_reads_are_cached_per_session_and_refresh_sees_other_writers(any_db, embedder):
    with any_db.session() as s1:
        kb1 = KnowledgeBase(s1, embedder=embedder)
        assert kb1.relevant(COFFEE, ["brand"]) == []
        with any_db.session() as s2:
            KnowledgeBase(s2, embedder=embedder).add(d("Brand rule written by another session."))
        assert kb1.relevant(COFFEE, ["brand"]) == []  # cached within the session
        kb1.refresh()
        assert [v.text for v in kb1.relevant(COFFEE, ["brand"])] == ["Brand rule written by another session."]
        other_space = KnowledgeBase(s1, embedder=embedder, space="staging")
        other_space.add(d("A staging rule."))  # any change on the session drops the cache of every space
        assert len(kb1.relevant(COFFEE, ["brand"])) == 1


def test_invalid_edit_is_a_clear_error_and_changes_nothing(kb):
    lid = kb.add(d("A valid rule about coffee brands.")).learning_id
    with pytest.raises(InputError, match="text"):
        kb.edit(lid, text="x")
    assert kb.get(lid).version == 1 and kb.get(lid).text == "A valid rule about coffee brands."
