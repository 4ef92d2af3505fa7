"""Escalation within a supervisor budget, worked examples as learnings, and the set-at-a-time writes."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from shelfwise.enrich import EnrichmentLoop, LoopConfig
from shelfwise.enrich.agreement import vote
from shelfwise.enrich.drafts import format_worked, parse_worked, worked_draft
from shelfwise.enrich.escalation import EscalationPolicy, FillRates, attribute_prior, uncertainty
from shelfwise.enrich.kb import KnowledgeBase
from shelfwise.enrich.kb.types import LearningView
from shelfwise.enrich.workers import format_worked_examples
from shelfwise.store import Catalog, Listing
from shelfwise.store.models import EventRow, ExtractedValue
from tests.enrich.doubles import generator_double, make_app


def test_uncertainty_counts_disputes_empty_likely_attributes_and_single_sources():
    names = ["Brand", "Flavor", "Rare"]
    found = {"Brand": vote("Brand", [("llm", "Acme"), ("kb", "Acme")]), "Flavor": vote("Flavor", [("llm", "Mocha"),
             ("kb", None)]), "Rare": vote("Rare", [("llm", None), ("kb", None)])}
    sure = uncertainty(names, found, [])
    assert sure == 0.5 + round(0.9 * 0.8 ** 2, 4)  # one single-source value + the least likely empty attribute
    assert uncertainty(names, found, ["Brand"]) == sure + 2.0
    nothing = {a: vote(a, [("llm", None), ("kb", None)]) for a in names}
    assert uncertainty(names, nothing, []) > sure


def test_policy_spends_the_budget_on_the_least_sure_products():
    policy = EscalationPolicy(0.35, history=[1.0] * 10)
    escalated = []
    for score in [1.0, 1.0, 4.0, 1.0, 1.0, 3.5, 1.0, 4.5, 1.0, 1.0]:
        decided = policy.should_escalate(score, has_disputes=False)
        policy.observe(score, decided)
        escalated.append(decided)
    assert [s for s, e in zip([1.0, 1.0, 4.0, 1.0, 1.0, 3.5, 1.0, 4.5, 1.0, 1.0], escalated, strict=True) if e] \
        == [4.0, 3.5, 4.5]
    assert policy.should_escalate(0.0, has_disputes=True), "a disagreement always goes to the supervisor"
    capped = EscalationPolicy(0.2, history=[1.0] * 10)
    n = 0
    for _ in range(10):
        d = capped.should_escalate(9.0, has_disputes=False)
        capped.observe(9.0, d)
        n += d
    assert n <= 0.2 * 10 + 1, "never more than the budget (plus the slack of one call)"
    assert not EscalationPolicy(0.0).should_escalate(9.0, has_disputes=False)


def test_worked_examples_round_trip_and_the_closest_are_shown():
    draft = worked_draft("Coffee", "Brewhaus Sumatra K-Cup Pods, 16 Count",
                         {"Brand": "Brewhaus", "Item form": "K-Cup", "Flavor": "Invented", "Net content": None})
    assert draft is not None and draft.attribute is None
    title, values = parse_worked(draft.examples[0])
    assert title.startswith("Brewhaus Sumatra") and values == {"Brand": "Brewhaus", "Item form": "K-Cup"}, \
        "values that are not spans of the title never become examples"
    near = format_worked("Brewhaus French Roast K-Cup Pods, 24 Count", {"Brand": "Brewhaus"})
    far = format_worked("Tazo Zen Green Tea Bags", {"Brand": "Tazo"})
    lv = LearningView(id=1, category_path="Coffee", attribute=None, text="worked", examples=[far, near],
                      status="active", version=1, origin="supervisor", support=1)
    shown = format_worked_examples([lv], "Brewhaus Veranda Blend K-Cup Pods, 10 Count", ["Brand"], k=1)
    assert shown.startswith("Listing: Brewhaus French Roast") and json.loads(shown.split("Answer: ")[1]) == \
        {"Brand": "Brewhaus"}


def _unsure_generator(request):  # type: ignore[no-untyped-def]
    """Finds nothing but the count: the workers are unsure about the brand, nobody disagrees."""
    out = json.loads(generator_double(request))
    out["Brand"] = None
    return json.dumps(out)


def test_an_escalated_product_gets_supervised_values_and_a_worked_example(enrich_settings):
    sw = make_app(enrich_settings, **{"worker.generator": _unsure_generator})
    with sw.db.session() as s:
        Catalog(s).ingest([(0, Listing(id="e1", title="Brewhaus Pike Place Roast K-Cup Pods, 32 Count",
                                       category_path="Coffee"))])
    report = EnrichmentLoop(sw, LoopConfig(supervisor_budget=1.0)).run_batch(["e1"])
    assert report.disagreements == 0 and report.supervisor_calls == 1
    with sw.db.session() as s:
        brand = s.scalar(select(ExtractedValue).where(ExtractedValue.product_id == "e1",
                                                      ExtractedValue.attribute == "Brand"))
        assert brand.value == "Brewhaus" and brand.status == "supervised"
        worked = [lv for lv in KnowledgeBase(s).list(status="active") if lv.attribute is None]
        assert worked and parse_worked(worked[0].examples[0])[1]["Brand"] == "Brewhaus"
    budgetless = make_app(enrich_settings.model_copy(update={"home": enrich_settings.home.parent / "b"}),
                          **{"worker.generator": _unsure_generator})
    with budgetless.db.session() as s:
        Catalog(s).ingest([(0, Listing(id="e1", title="Brewhaus Pike Place Roast K-Cup Pods, 32 Count",
                                       category_path="Coffee"))])
    assert EnrichmentLoop(budgetless, LoopConfig(supervisor_budget=0.0)).run_batch(["e1"]).supervisor_calls == 0
    sw.close()
    budgetless.close()


def test_a_group_of_products_is_written_in_one_transaction_with_events_in_order(scripted_sw):
    loop = EnrichmentLoop(scripted_sw, LoopConfig(commit_every=64, commit_after_s=3600))
    loop.run_batch(["c1", "c2", "c3", "c4"])
    with scripted_sw.db.session() as s:
        rows = s.scalars(select(ExtractedValue).where(ExtractedValue.is_current.is_(True))).all()
        assert {r.product_id for r in rows} == {"c1", "c2", "c3", "c4"}
        for r in rows:  # every value points at its own Extraction event
            ev = s.get(EventRow, r.event_id)
            assert ev.type == "extraction" and ev.product_id == r.product_id and ev.payload["attribute"] == r.attribute
        assert s.scalar(select(func.count()).select_from(ExtractedValue)) == len(rows)
    loop.run_batch(["c1"])  # a new batch supersedes, never duplicates, the current values
    with scripted_sw.db.session() as s:
        current = s.execute(select(ExtractedValue.attribute, func.count()).where(
            ExtractedValue.product_id == "c1", ExtractedValue.is_current.is_(True))
            .group_by(ExtractedValue.attribute)).all()
        assert current and all(n == 1 for _a, n in current)


def test_fill_rates_are_learned_from_the_products_the_loop_enriched(scripted_sw):
    names = ["Brand", "Net content", "Item form"]
    loop = EnrichmentLoop(scripted_sw, LoopConfig(supervisor_budget=0.0))
    assert loop.fill_rates.priors("Coffee", names) == pytest.approx([attribute_prior(i) for i in range(3)], abs=1e-4), \
        "before any batch the schema order is the guess"
    loop.run_batch(["c1", "c2", "c3", "c4"], batch_id="first")
    with scripted_sw.db.session() as s:
        rates = FillRates.from_store(s, ["Coffee"])
        assert rates.products == {"Coffee": 4}, "products are counted from job marks, empty ones included"
        assert rates.filled[("Coffee", "Net content")] == 4 and ("Coffee", "Item form") not in rates.filled
        net, form = rates.priors("Coffee", names)[1:]
        assert net == round((4 + 8 * attribute_prior(1)) / 12, 4) > attribute_prior(1)
        assert form == round(8 * attribute_prior(2) / 12, 4) < attribute_prior(2), \
            "an attribute the loop never found becomes less likely than its schema position says"
        resumed = FillRates.from_store(s, ["Coffee"], exclude_job="enrich:first")
        assert resumed.products == {} and \
            resumed.priors("Coffee", names) == pytest.approx([attribute_prior(i) for i in range(3)], abs=1e-4), \
            "a resumed batch ranks with the rates its crashed run started from"
        assert FillRates.from_store(s, ["Shoes"]).products == {}
    loop.run_batch(["c1"], batch_id="second")
    assert loop.fill_rates.products == {"Coffee": 4}, "the next batch reads what the earlier ones stored"


def test_uncertainty_weighs_empty_attributes_by_the_learned_rates():
    names = ["Rare", "Common"]
    nothing = {a: vote(a, [("llm", None), ("kb", None)]) for a in names}
    rates = FillRates(products={"Coffee": 40}, filled={("Coffee", "Common"): 36})
    priors = rates.priors("Coffee", names)
    assert priors[1] > priors[0], "a hand-written schema listing the rare attribute first is overruled by data"
    assert uncertainty(names, nothing, [], priors) == round(sum(priors), 4)
