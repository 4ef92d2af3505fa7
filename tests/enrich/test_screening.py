"""Screening generator values with what the knowledge base confirmed (screening.py), pure and in the loop."""

from __future__ import annotations

import json

from shelfwise.enrich import EnrichmentLoop, LoopConfig, ReviewQueue
from shelfwise.enrich.drafts import rejection_draft
from shelfwise.enrich.health import health_report
from shelfwise.enrich.kb import KnowledgeBase
from shelfwise.enrich.screening import REJECT_PREFIX, Screen, screen_values, shape_of, unit_shape
from shelfwise.store import Catalog
from tests.enrich.conftest import LISTINGS, asked, generator_double, make_app, verdict


def test_shape_of_is_about_digits():
    assert shape_of("12 oz") == "number" and shape_of("8 M US") == "number"
    assert shape_of("Medium Roast") == "words" and shape_of("Women's") == "words"


def test_a_shape_rule_needs_enough_confirmed_values_all_of_one_shape():
    two = Screen.learn({"Net content": ["12 oz", "1lb"]})
    assert two.rules == {}  # two values are not enough
    three = Screen.learn({"Net content": ["12 oz", "1lb", "100 Count"]})
    assert three.rules["Net content"].shape == "number"
    assert three.why_not("Net content", "Ground") == "every confirmed Net content (3) has a number"
    assert three.why_not("Net content", "24 Count") is None
    mixed = Screen.learn({"Model name": ["Air Max 90", "Tulsa Flat", "8400"]})
    assert "Model name" not in mixed.rules  # numbers and words both confirmed: no rule


def test_rejected_values_with_numbers_make_a_words_rule_only_beside_a_confirmed_word():
    rejected = {"Caffeine content": ["128 Count", "1lb", "80 Ounce"]}
    assert Screen.learn({"Caffeine content": []}, rejected).rules == {}
    screen = Screen.learn({"Caffeine content": ["Decaf"]}, rejected)
    rule = screen.rules["Caffeine content"]
    assert (rule.shape, rule.confirmed, rule.rejected) == ("words", 1, 3)
    assert "3 rejected values had one" in (screen.why_not("Caffeine content", "2x Caffeine") or "")
    assert screen.why_not("Caffeine content", "Caffeinated") is None


def test_exact_rejections_and_values_owned_by_another_attribute_are_dropped():
    screen = Screen.learn({"Item form": ["Whole Bean Coffee"], "Flavor": []},
                          {"Flavor": ["100 Count"]})
    assert screen.why_not("Flavor", "100 count") == "an expert rejected '100 count' as Flavor"
    assert screen.why_not("Flavor", "Whole-Bean coffee") == "'Whole-Bean coffee' is a confirmed Item form"
    assert screen.why_not("Item form", "Whole Bean Coffee") is None
    assert screen.why_not("Flavor", "Sumatra") is None and screen.why_not("Flavor", None) is None


def test_a_value_confirmed_for_the_attribute_is_never_screened():
    screen = Screen.learn({"Flavor": ["100% Arabica"], "Roast type": ["Dark", "Medium", "Light"]},
                          {"Flavor": ["100% Arabica"]})
    assert screen.why_not("Flavor", "100% Arabica") is None
    shared = Screen.learn({"Flavor": ["Vanilla"], "Specialty": ["Vanilla"]})
    assert shared.owners == {}  # confirmed for two attributes: owned by neither


def test_screen_values_sets_dropped_values_to_none_and_says_why():
    screen = Screen.learn({"Net content": ["12 oz", "1lb", "100 Count"]})
    kept, dropped = screen_values({"Net content": "Ground", "Brand": "Brewhaus", "Flavor": None}, screen)
    assert kept == {"Net content": None, "Brand": "Brewhaus", "Flavor": None}
    assert list(dropped) == ["Net content"]
    assert screen_values({"Net content": "Ground"}, Screen()) == ({"Net content": "Ground"}, {})


def test_rejection_draft_rules_out_number_values_that_share_no_word_with_the_answer():
    cands = [{"worker": "generator", "value": "100 Count"}, {"worker": "generator.alt", "value": "12 oz"},
             {"worker": "generator.alt", "value": "Assorted"}, {"worker": "kb", "value": "3 Pack"},
             {"worker": "generator.alt", "value": None}]
    draft = rejection_draft("Coffee", "Flavor", "Assorted 12 oz Sampler", cands)
    assert draft is not None and draft.examples == [f"{REJECT_PREFIX} 100 Count"]
    assert draft.attribute == "Flavor" and "not the Flavor" in draft.text
    nothing = rejection_draft("Coffee", "Flavor", None, cands)
    assert nothing is not None and nothing.examples == [f"{REJECT_PREFIX} 100 Count", f"{REJECT_PREFIX} 12 oz"]
    # A word value ruled out for one listing may be right for the next: never a rejection learning.
    assert rejection_draft("Coffee", "Specialty", "Gourmet", [{"worker": "generator", "value": "Organic"}]) is None


def _count_as_caffeine(request) -> str:  # type: ignore[no-untyped-def]
    """The panel's second model: also reads the pack count as the caffeine content (a small model's slip)."""
    out = json.loads(generator_double(request))
    out["Brand"] = None
    if "Caffeine content" in out and out.get("Net content"):
        out["Caffeine content"] = out["Net content"]
    return json.dumps(out)


def _count_flagging_evaluator(request) -> str:  # type: ignore[no-untyped-def]
    return verdict(asked(request)[0] not in ("Caffeine content", "Brand"), "not stated")


def test_an_expert_no_value_answer_screens_the_same_slip_out_of_the_next_batch(enrich_settings):
    sw = make_app(enrich_settings, **{"worker.generator.alt": _count_as_caffeine,
                                      "worker.evaluator": _count_flagging_evaluator})
    with sw.db.session() as s:
        Catalog(s).ingest(list(enumerate(LISTINGS)))
    base = {"compiled_worker": False, "supervisor_budget": 0.0, "generator_examples": 0}
    first: list = []
    EnrichmentLoop(sw, LoopConfig(**base)).run_batch(["c1"], batch_id="b1", on_product=first.append)
    assert "Caffeine content" in first[0].disagreements and first[0].screened == []
    with sw.db.session() as s:
        queue = ReviewQueue(s, KnowledgeBase(s, embedder=sw.embedder))
        [item] = [i for i in queue.list("open") if i.attribute == "Caffeine content"]
        queue.resolve(item.id, None, actor="expert")  # "this listing states no caffeine content"
        rejections = [lv for lv in KnowledgeBase(s).list(status="active") if lv.attribute == "Caffeine content"]
        assert [lv.examples for lv in rejections] == [[f"{REJECT_PREFIX} 24 Count"]]
        rejection_id = rejections[0].id
    second: list = []
    report = EnrichmentLoop(sw, LoopConfig(**base)).run_batch(["c1"], batch_id="b2", on_product=second.append)
    assert "Caffeine content" not in second[0].disagreements
    assert rejection_id not in second[0].injected  # enforced by code, so it spends none of the prompt's budget
    assert second[0].statuses["Caffeine content"] == "empty"
    assert second[0].screened == [("generator.alt Caffeine content='24 Count': an expert rejected '24 Count' as "
                                  "Caffeine content")]
    assert report.screened == 1
    with sw.db.session() as s:  # `shelfwise report` reads it from the batch summaries
        assert {b.batch_id: b.screened for b in health_report(s).batches} == {"b1": 0, "b2": 1}
    unscreened: list = []
    EnrichmentLoop(sw, LoopConfig(screen=False, **base)).run_batch(["c1"], batch_id="b3",
                                                                   on_product=unscreened.append)
    assert "Caffeine content" in unscreened[0].disagreements  # the screen, not chance, removed the dispute
    sw.close()


def test_shapes_generalise_rejections_and_ownership_unless_a_confirmed_value_has_that_shape():
    screen = Screen.learn({"Net content": ["100 Count", "1lb"], "Pack size": ["Pack of 1"], "Caffeine content": []},
                          {"Caffeine content": ["128 Count", "80 Ounce"], "Pack size": ["10 oz", "3 Count"]})
    assert screen.why_not("Caffeine content", "96 count") == (
        "'96 count' has the shape of '128 count', which an expert rejected as Caffeine content")
    assert screen.why_not("Pack size", "12 oz") is not None
    assert screen.why_not("Flavor", "24 Count") == "'24 Count' has the shape of confirmed Net content values"
    assert screen.why_not("Net content", "24 count") is None  # its own confirmed shape
    assert screen.why_not("Pack size", "Pack of 6") is None
    assert screen.why_not("Caffeine content", "2x Caffeine") is None  # a shape nobody confirmed or rejected
    voided = Screen.learn({"Pack size": ["Pack of 1", "2 Count"]}, {"Pack size": ["3 Count"]})
    assert voided.why_not("Pack size", "12 Count") is None  # "2 Count" was confirmed: the shape is allowed


def test_unit_spellings_share_a_shape_so_a_rejected_ounce_rules_out_oz():
    assert unit_shape("12 Ounce") == unit_shape("3.42-Ounce") == unit_shape("24.2 ounces") == unit_shape("12 oz.")
    assert unit_shape("100 Count") == unit_shape("96 ct") != unit_shape("12 oz")
    assert unit_shape("Organic") is None and unit_shape("8400") is None
    screen = Screen.learn({"Caffeine content": []}, {"Caffeine content": ["80 Ounce"]})
    assert screen.why_not("Caffeine content", "12 oz") is not None
    assert screen.why_not("Caffeine content", "12 Count") is None
