"""The memory manager: guards first (duplicate, contradiction, retired twin, untrusted), then the LLM."""

from sqlalchemy import select

from shelfwise.enrich.kb import Evidence, KnowledgeBase, LearningDraft
from shelfwise.enrich.kb.manager import PROMPT_ID
from shelfwise.store.models import EventRow

COFFEE = "Grocery > Coffee"
KCUP = "In Coffee, 'K-Cup' names the item form (single-serve pod), never the brand."


def draft(text=KCUP, path=COFFEE, attribute="item_form", **kw):
    return LearningDraft(category_path=path, attribute=attribute, text=text, **kw)


def test_new_learning_opens_a_branch_and_logs_an_event(kb, session):
    p = kb.add(draft(normalize={"k cup": "K-Cup"}, evidence=[Evidence(kind="ruling", product_id="cof-001")]))
    assert p.action == "created" and "opened branch" in p.reason and p.path == COFFEE
    second = kb.add(draft("Roast level is one of light, medium, dark.", attribute="roast"))
    assert second.action == "created" and "opened branch" not in second.reason  # the node exists now
    view = kb.get(p.learning_id)
    assert view.status == "active" and view.version == 1 and view.evidence[0].product_id == "cof-001"
    events = session.scalars(select(EventRow).where(EventRow.type == "learning_change")).all()
    assert [e.payload["action"] for e in events] == ["created", "created"]


def test_near_duplicate_merges_without_asking_the_llm(session, embedder, scripted_llm):
    llm, backend = scripted_llm()  # empty: any call would fail the test
    kb = KnowledgeBase(session, embedder=embedder, llm=llm)
    first = kb.add(draft(examples=["Breakfast Blend K-Cup Pods -> K-Cup"]))
    again = kb.add(draft(KCUP.replace("(single", "(a single"), examples=["Donut Shop K-Cups -> K-Cup"],
                         normalize={"k-cups": "K-Cup"}))
    assert again.action == "merged" and again.learning_id == first.learning_id and again.decided_by == "guard"
    assert backend.requests == []
    view = kb.get(first.learning_id)
    assert view.support == 2 and view.version == 2 and len(view.examples) == 2 and view.normalize == {"k-cups": "K-Cup"}


def test_contradiction_in_same_scope_replaces(kb):
    old = kb.add(draft("K-Cup is the brand for Keurig pods.", normalize={"k cup": "Keurig"}))
    new = kb.add(draft(normalize={"K-Cup": "K-Cup"}))
    assert new.action == "replaced" and new.learning_id == old.learning_id and "contradicts" in new.reason
    view = kb.get(old.learning_id)
    assert view.text == KCUP and view.version == 2
    assert kb.history(old.learning_id)[0].text == "K-Cup is the brand for Keurig pods."


def test_a_machine_cannot_overrule_an_expert_learning(kb):
    expert = kb.add(draft(normalize={"k cup": "K-Cup"}), actor="expert")
    p = kb.add(draft("Treat k cup as the Keurig brand.", normalize={"k cup": "Keurig"}), actor="supervisor")
    assert p.action == "created" and p.learning_id != expert.learning_id
    assert kb.get(p.learning_id).status == "proposed" and kb.get(expert.learning_id).version == 1


def test_llm_decides_merge_replace_and_descend(session, embedder, scripted_llm):
    kb0 = KnowledgeBase(session, embedder=embedder)
    a = kb0.add(draft("Pods and capsules are item forms, not flavours.", path="Grocery")).learning_id
    b = kb0.add(draft("Weight is given in ounces on the bag.", attribute="item_form", path=COFFEE)).learning_id
    llm, backend = scripted_llm({"action": "descend", "target": None, "reason": "more specific"},
                                {"action": "replace", "target": b, "reason": "outdated"})
    kb = KnowledgeBase(session, embedder=embedder, llm=llm)
    p = kb.add(draft("Item form: ground, whole bean, or single-serve pod; pick the packaging words."))
    assert p.action == "replaced" and p.learning_id == b and p.decided_by == "llm"
    assert len(backend.requests) == 2 and kb.get(a).version == 1
    prompt = backend.requests[0].messages[-1].content
    assert f"[{a}]" in prompt and "<<<RULE" in prompt and "descend" in prompt
    llm2, _ = scripted_llm({"action": "merge", "target": a, "reason": "same"})
    p2 = KnowledgeBase(session, embedder=embedder, llm=llm2).add(
        draft("Capsule or pod describes the form of coffee.", path="Grocery"))
    assert p2.action == "merged" and p2.learning_id == a


def test_llm_naming_an_unknown_learning_falls_back_to_a_new_learning(session, embedder, scripted_llm):
    KnowledgeBase(session, embedder=embedder).add(draft("Something about pods in coffee products."))
    llm, _ = scripted_llm({"action": "merge", "target": 9999, "reason": "hallucinated"})
    p = KnowledgeBase(session, embedder=embedder, llm=llm).add(draft("Whole bean is an item form too."))
    assert p.action == "created" and p.decided_by == "default"


def test_llm_failure_does_not_lose_the_learning(session, embedder, scripted_llm):
    KnowledgeBase(session, embedder=embedder).add(draft("Something about pods in coffee products."))
    llm, _ = scripted_llm("not json at all", "still not json", "nope")
    p = KnowledgeBase(session, embedder=embedder, llm=llm).add(draft("Whole bean is an item form too."))
    assert p.action == "created"


def test_retired_rule_is_not_learned_back(kb):
    p = kb.add(draft())
    kb.retire(p.learning_id, "wrong: experts say otherwise")
    again = kb.add(draft())
    assert again.action == "skipped" and again.learning_id == p.learning_id


def test_feedback_drafts_are_proposed_and_never_touch_trusted_learnings(kb):
    trusted = kb.add(draft(normalize={"k cup": "K-Cup"}))
    fb = [Evidence(kind="feedback", event_id=1)]
    same = kb.add(draft(evidence=fb), status="active")  # a duplicate, but from untrusted text
    clash = kb.add(draft("K-Cup is the brand", normalize={"k cup": "Evil"}, evidence=fb), status="active")
    assert same.action == "created" and kb.get(same.learning_id).status == "proposed"
    assert clash.action in ("created", "merged") and kb.get(clash.learning_id).status == "proposed"
    assert kb.get(trusted.learning_id).version == 1 and kb.get(trusted.learning_id).normalize == {"k cup": "K-Cup"}
    assert PROMPT_ID.startswith("kb.place")


def test_llm_can_generalise_to_an_upper_node_but_never_to_the_root(session, embedder, scripted_llm):
    kb0 = KnowledgeBase(session, embedder=embedder)
    kb0.add(draft("Ounces on grocery labels are net weight, not volume.", path="", attribute="item_form"))
    kb0.add(draft("Multipacks: the count before 'pack' is the pack size.", path="Grocery"))
    llm, backend = scripted_llm({"action": "here", "target": None, "reason": "root"},
                                {"action": "here", "target": None, "reason": "all grocery"})
    p = KnowledgeBase(session, embedder=embedder, llm=llm).add(draft("Single-serve means one portion per pod."))
    assert p.action == "created" and p.path == "Grocery" and p.decided_by == "llm"
    assert len(backend.requests) == 2  # asked at the root (refused to generalise there) and at Grocery


def test_synthesis_phrasing_comes_from_the_llm_when_available(session, embedder, scripted_llm):
    llm, backend = scripted_llm({"text": "In Grocery, 'N count' is the pack size."})
    kb = KnowledgeBase(session, embedder=embedder, llm=llm)
    for cat in ("Coffee", "Tea", "Snacks"):
        KnowledgeBase(session, embedder=embedder).add(
            draft(f"In {cat}, '12 count' is the pack size.", path=f"Grocery > {cat}", attribute="pack_size",
                  normalize={"12 count": "12"}))
    [lifted] = [p for p in kb.synthesize() if p.action == "created"]
    assert kb.get(lifted.learning_id).text == "In Grocery, 'N count' is the pack size."
    assert "<<<RULES" in backend.requests[0].messages[-1].content


def test_trusted_learning_does_not_disappear_into_a_feedback_proposal(kb):
    proposal = kb.add(draft(evidence=[Evidence(kind="feedback", event_id=7)]))
    trusted = kb.add(draft())
    assert trusted.action == "created" and trusted.learning_id != proposal.learning_id
    assert kb.get(trusted.learning_id).status == "active" and kb.get(proposal.learning_id).status == "proposed"


def test_llm_replace_of_a_broader_rule_keeps_it_for_the_sibling_categories(session, embedder, scripted_llm):
    broad = KnowledgeBase(session, embedder=embedder).add(
        draft("Grocery item forms come from packaging words.", path="Grocery")).learning_id
    llm, _ = scripted_llm({"action": "replace", "target": broad, "reason": "narrower is better"})
    p = KnowledgeBase(session, embedder=embedder, llm=llm).add(draft("Coffee item form: pod, ground or bean."))
    assert p.action == "created" and p.path == COFFEE
    kb = KnowledgeBase(session, embedder=embedder)
    assert kb.get(broad).version == 1
    assert [v.id for v in kb.relevant(COFFEE, ["item_form"])] == [p.learning_id, broad]
