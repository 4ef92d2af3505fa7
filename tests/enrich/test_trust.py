"""The track record: whom to trust in a dispute, learned from resolved review items only."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from shelfwise.enrich import EnrichmentLoop, LoopConfig, ReviewQueue, TrackRecord, TrustConfig
from shelfwise.enrich.agreement import Candidate, normalize
from shelfwise.enrich.health import health_report
from shelfwise.enrich.trust import EVALUATOR, LONGER, SHORTER, SUPERVISOR, in_sample, nested_spans
from shelfwise.store import Catalog
from shelfwise.store.events import EventLog
from tests.enrich.conftest import LISTINGS, asked, generator_double, listing_title, make_app, verdict


def _cands(**values: str | None) -> list[Candidate]:
    return [Candidate(worker=w.replace("_", "."), value=v, key=normalize(v)) for w, v in values.items()]


def _record(**cfg) -> TrackRecord:  # type: ignore[no-untyped-def]
    return TrackRecord(TrustConfig(**{"min_answers": 3, "explore": 0.0, **cfg}))


def test_no_answers_no_opinion_then_estimates_follow_the_answers():
    rec = _record()
    assert rec.accuracy("generator", "Coffee", "Brand") == pytest.approx(0.5)
    for _ in range(6):
        rec.observe_dispute("Coffee", "Brand", {"generator": "K-Cup", "generator.alt": "Brewhaus"}, "K-Cup", "Brewhaus")
    assert rec.accuracy("generator.alt", "Coffee", "Brand") > 0.8
    assert rec.accuracy("generator", "Coffee", "Brand") < 0.2
    assert rec.accuracy(SUPERVISOR, "Coffee", "Brand") < 0.2
    # Another attribute of the category has no answers of its own: it inherits the worker's record, shrunk.
    other = rec.accuracy("generator.alt", "Coffee", "Flavor")
    assert 0.5 < other < rec.accuracy("generator.alt", "Coffee", "Brand")


def test_a_worker_that_gave_no_value_is_not_scored_and_none_can_be_the_right_answer():
    rec = _record()
    rec.observe_dispute("Shoes", "Color", {"generator": "Red", "generator.alt": None, "kb": None}, None, None)
    assert rec.answers("generator") == 1 and rec.answers("generator.alt") == 0 and rec.answers("kb") == 0
    assert rec.accuracy(SUPERVISOR, "Shoes", "Color") > 0.5  # "not stated" was right
    assert rec.accuracy("generator", "Shoes", "Color") < 0.5


def test_settle_needs_answers_for_both_sides_and_a_clear_lead_over_the_supervisor():
    rec = _record(min_answers=3)
    clash = _cands(generator="K-Cup", generator_alt="Brewhaus")
    for _ in range(2):
        rec.observe_dispute("Coffee", "Brand", {"generator": "K-Cup", "generator.alt": "Brewhaus"}, "K-Cup", "Brewhaus")
    assert rec.settle("Coffee", "Brand", clash) is None  # two answers: not enough yet
    rec.observe_dispute("Coffee", "Brand", {"generator": "K-Cup", "generator.alt": "Brewhaus"}, "K-Cup", "Brewhaus")
    verdict = rec.settle("Coffee", "Brand", clash)
    assert verdict is not None and verdict.worker == "generator.alt" and verdict.value == "Brewhaus"
    assert verdict.accuracy > verdict.supervisor_accuracy and "settled by track record" in verdict.reason
    # Agreement is not a dispute, and a supervisor that was right as often is not overruled.
    assert rec.settle("Coffee", "Brand", _cands(generator="Brewhaus", generator_alt="brewhaus ")) is None
    fair = _record(min_answers=3)
    for _ in range(4):
        fair.observe_dispute("Coffee", "Brand", {"generator": "K-Cup", "generator.alt": "Brewhaus"}, "Brewhaus",
                             "Brewhaus")
    assert fair.settle("Coffee", "Brand", clash) is None


def test_call_cost_trades_a_little_accuracy_for_fewer_supervisor_calls():
    """A worker a bit less accurate than the supervisor settles the clash once a call is priced above the gap;
    a rival worker must still be beaten by the margin, and the evaluator's flags follow the same price."""
    answers = [("Brewhaus", "Brewhaus"), ("Brewhaus", "K-Cup"), ("Brewhaus", "Brewhaus"), ("K-Cup", "K-Cup"),
               ("Brewhaus", "Brewhaus"), ("Brewhaus", "Brewhaus")]
    recs = {cost: _record(call_cost=cost) for cost in (0.0, 0.3)}
    for rec in recs.values():
        for proposed, truth in answers:  # the supervisor 6 of 6, the 1.5B worker 5 of 6, the 0.5B worker 1 of 6
            rec.observe_dispute("Coffee", "Brand", {"generator": "K-Cup", "generator.alt": "Brewhaus"}, proposed,
                                truth)
            rec.observe_dispute("Coffee", "Flavor", {"generator": "Whole Bean", "generator.alt": None}, "Mocha",
                                "Mocha" if proposed == truth else "Whole Bean")
    clash = _cands(generator="K-Cup", generator_alt="Brewhaus")
    cheap, priced = recs[0.0], recs[0.3]
    assert priced.accuracy(SUPERVISOR, "Coffee", "Brand") > priced.accuracy("generator.alt", "Coffee", "Brand")
    assert cheap.settle("Coffee", "Brand", clash) is None
    verdict = priced.settle("Coffee", "Brand", clash)
    assert verdict is not None and verdict.worker == "generator.alt" and verdict.value == "Brewhaus"
    assert verdict.accuracy < verdict.supervisor_accuracy and "call_cost" in verdict.reason
    # A close rival worker with another value blocks the verdict whatever a call costs.
    twin = _record(call_cost=1.0)
    for _ in range(6):
        twin.observe_dispute("Coffee", "Brand", {"generator": "K-Cup", "generator.alt": "Brewhaus"}, "Mocha", "Mocha")
    assert twin.settle("Coffee", "Brand", clash) is None
    assert cheap.drop("Coffee", "Flavor") is None  # flags right 5 of 6, the supervisor 5 of 6
    assert priced.drop("Coffee", "Flavor") is not None


def test_exploration_keeps_a_stable_share_of_settleable_disputes_for_the_supervisor():
    rec = _record(explore=1.0)
    for _ in range(5):
        rec.observe_dispute("Coffee", "Brand", {"generator": "K-Cup", "generator.alt": "Brewhaus"}, "K-Cup", "Brewhaus")
    assert rec.settle("Coffee", "Brand", _cands(generator="K-Cup", generator_alt="Brewhaus"), product_id="p1") is None
    picks = [in_sample(f"p{i}", "Brand", 0.2) for i in range(2000)]
    assert 0.15 < sum(picks) / len(picks) < 0.25
    assert picks == [in_sample(f"p{i}", "Brand", 0.2) for i in range(2000)]  # the same pairs every time
    assert all(in_sample(f"p{i}", "Brand", 0.5) for i in range(2000) if picks[i])  # nested samples
    assert not any(in_sample(f"p{i}", "Brand", 0.0) for i in range(100))


def test_config_validates_itself():
    with pytest.raises(ValidationError):
        TrustConfig(margin=1.5)
    with pytest.raises(ValidationError):
        LoopConfig(audit_rulings=-0.1)


def _brand_reader(request) -> str:  # type: ignore[no-untyped-def]
    out = json.loads(generator_double(request))
    out["Brand"] = listing_title(request).split()[0]
    return json.dumps(out)


def _biased_supervisor(request) -> str:  # type: ignore[no-untyped-def]
    """Confident and wrong: sides with the worker that reads the pod format as the brand."""
    return json.dumps({"action": "answer", "rulings": [
        {"attribute": "Brand", "value": "K-Cup", "why_disagreed": "spans differ", "confidence": 0.9}]})


def _resolve_open(sw, value: str) -> None:  # type: ignore[no-untyped-def]
    """A person answers every open review item with ``value``."""
    with sw.db.session() as s:
        queue = ReviewQueue(s)
        for item in queue.list("open"):
            queue.resolve(item.id, value, learn=False)


def _second_batch(sw, base: dict):  # type: ignore[no-untyped-def]
    """Batch b2 (c3, c4) without learning: its report and per-product results."""
    results: list = []
    report = EnrichmentLoop(sw, LoopConfig(learn=False, **base)).run_batch(["c3", "c4"], batch_id="b2",
                                                                        on_product=results.append)
    return report, results


def _second_batch_without_calls(sw, base: dict):  # type: ignore[no-untyped-def]
    """``_second_batch``, checking that the supervisor was not asked at all."""
    calls = len(sw.backends["supervisor"].requests)
    report, results = _second_batch(sw, base)
    assert len(sw.backends["supervisor"].requests) == calls
    return report, results


def test_audited_answers_teach_the_loop_to_settle_later_clashes_without_the_supervisor(enrich_settings):
    sw = make_app(enrich_settings, **{"worker.generator.alt": _brand_reader, "supervisor": _biased_supervisor})
    with sw.db.session() as s:
        Catalog(s).ingest(list(enumerate(LISTINGS)))
    trust = TrustConfig(min_answers=2, explore=0.0)
    base = {"compiled_worker": False, "supervisor_budget": 0.0, "generator_examples": 0, "trust": trust}
    learning = EnrichmentLoop(sw, LoopConfig(audit_rulings=1.0, **base))
    first = learning.run_batch(["c1", "c2"], batch_id="b1")
    assert first.supervisor_calls == 2 and first.trusted == 0
    with sw.db.session() as s:  # the confident ruling was held back for the audit, not stored
        queue = ReviewQueue(s)
        items = queue.list("open")
        assert [(i.product_id, i.attribute, i.proposed) for i in items] == [("c1", "Brand", "K-Cup"),
                                                                          ("c2", "Brand", "K-Cup")]
        assert all(i.reason.startswith("audit sample") for i in items)
    _resolve_open(sw, "Brewhaus")
    second, results = _second_batch_without_calls(sw, base)
    assert second.trusted == 2 and second.supervisor_calls == 0 and second.disagreements == 2
    assert all(r.values["Brand"] == "Brewhaus" and r.statuses["Brand"] == "trusted" for r in results)
    with sw.db.session() as s:
        events = [e.event for e in EventLog(s).read("disagreement", product_id="c3")]
        assert any("settled by track record: generator.alt" in r for e in events for r in e.reasons)
        record = TrackRecord.from_reviews(s, trust)
        health = {b.batch_id: b for b in health_report(s).batches}
    assert health["b1"].trusted == 0 and health["b2"].trusted == 2 and health["b2"].supervisor_rate == 0.0
    assert record.answers("generator.alt") == 2 and record.answers(SUPERVISOR) == 2
    sw.close()


def _record_that_trusts_the_brand_reader(enrich_settings):  # type: ignore[no-untyped-def]
    """An app whose first batch (c1, c2) was audited and answered: the track record now settles Brand
    clashes for generator.alt. Returns the app and the loop settings that go with it."""
    sw = make_app(enrich_settings, **{"worker.generator.alt": _brand_reader, "supervisor": _biased_supervisor})
    with sw.db.session() as s:
        Catalog(s).ingest(list(enumerate(LISTINGS)))
    trust = TrustConfig(min_answers=2, explore=0.0)
    base = {"compiled_worker": False, "supervisor_budget": 0.0, "generator_examples": 0, "trust": trust}
    EnrichmentLoop(sw, LoopConfig(audit_rulings=1.0, **base)).run_batch(["c1", "c2"], batch_id="b1")
    _resolve_open(sw, "Brewhaus")
    return sw, base


def test_settled_disputes_are_spot_checked_and_the_answers_score_the_workers_not_the_supervisor(enrich_settings):
    sw, base = _record_that_trusts_the_brand_reader(enrich_settings)
    calls = len(sw.backends["supervisor"].requests)
    results: list = []
    report = EnrichmentLoop(sw, LoopConfig(audit_settled=1.0, **base)).run_batch(
        ["c3", "c4"], batch_id="b2", on_product=results.append)
    assert len(sw.backends["supervisor"].requests) == calls  # a spot check costs no supervisor call
    assert report.trusted == 2 and report.reviews == 2
    # the trusted value is stored at once; the review item waits beside it
    assert all(r.values["Brand"] == "Brewhaus" and r.statuses["Brand"] == "trusted" for r in results)
    with sw.db.session() as s:
        items = ReviewQueue(s).list("open")
    assert [(i.product_id, i.proposed, i.proposed_by) for i in items] == [("c3", "Brewhaus", "generator.alt"),
                                                                         ("c4", "Brewhaus", "generator.alt")]
    assert all(i.reason.startswith("audit sample of a dispute the track record settled") for i in items)
    _resolve_open(sw, "Brewhaus")
    with sw.db.session() as s:
        record = TrackRecord.from_reviews(s, base["trust"])
    # both workers are scored on the new answers; the supervisor, never asked, is not
    assert record.answers("generator.alt") == 4 and record.answers("generator") == 4
    assert record.answers(SUPERVISOR) == 2
    sw.close()


def test_answers_about_a_replaced_model_do_not_count_for_its_successor(enrich_settings):
    sw, base = _record_that_trusts_the_brand_reader(enrich_settings)
    loop = EnrichmentLoop(sw, LoopConfig(**base))
    now = loop.source_models()
    assert set(now) == {"generator", "generator.alt", EVALUATOR, SUPERVISOR}
    with sw.db.session() as s:
        items = ReviewQueue(s).list("resolved")
        assert items and all(i.models == now for i in items)  # every item records who stood behind each source
        same = TrackRecord.from_reviews(s, base["trust"], models=now)
        moved = TrackRecord.from_reviews(s, base["trust"], models={**now, "generator.alt": "a-bigger-model"})
        unknown = TrackRecord.from_reviews(s, base["trust"])  # no models given: every answer counts
    assert same.answers("generator.alt") == unknown.answers("generator.alt") == 2
    assert moved.answers("generator.alt") == 0  # the new model starts afresh ...
    assert moved.answers("generator") == moved.answers(SUPERVISOR) == 2  # ... the others keep theirs
    # and without its record the moved role no longer settles the clash: the supervisor is asked again
    assert moved.settle("Coffee", "Brand", [Candidate(worker="generator", value="K-Cup", key="k-cup"),
                                            Candidate(worker="generator.alt", value="Brewhaus", key="brewhaus")]) is None
    assert same.settle("Coffee", "Brand", [Candidate(worker="generator", value="K-Cup", key="k-cup"),
                                           Candidate(worker="generator.alt", value="Brewhaus", key="brewhaus")])
    sw.close()


def test_settled_disputes_are_not_spot_checked_unless_asked_or_when_not_learning(enrich_settings):
    sw, base = _record_that_trusts_the_brand_reader(enrich_settings)
    off = EnrichmentLoop(sw, LoopConfig(**base)).run_batch(["c3"], batch_id="b2")
    frozen = EnrichmentLoop(sw, LoopConfig(audit_settled=1.0, learn=False, **base)).run_batch(["c4"], batch_id="b3")
    assert (off.trusted, off.reviews, frozen.trusted, frozen.reviews) == (1, 0, 1, 0)
    with sw.db.session() as s:
        assert ReviewQueue(s).list("open") == []
    with pytest.raises(ValidationError):
        LoopConfig(audit_settled=1.5)
    sw.close()


def test_without_learning_no_ruling_is_held_back_for_audit(enrich_settings):
    sw = make_app(enrich_settings, **{"worker.generator.alt": _brand_reader, "supervisor": _biased_supervisor})
    with sw.db.session() as s:
        Catalog(s).ingest(list(enumerate(LISTINGS)))
    loop = EnrichmentLoop(sw, LoopConfig(audit_rulings=1.0, learn=False, compiled_worker=False, supervisor_budget=0.0))
    results = []
    loop.run_batch(["c1"], on_product=results.append)
    assert results[0].statuses["Brand"] == "supervised" and results[0].reviews == 0
    sw.close()


def test_calibrated_confidence_is_the_record_once_it_has_enough_answers():
    rec = _record(min_answers=3)
    assert rec.calibrated(0.5, "Coffee", "Brand") == 0.5  # no answers: the model's own figure
    for _ in range(3):
        rec.observe_dispute("Coffee", "Brand", {"generator": "K-Cup"}, "K-Cup", "Brewhaus")
    assert rec.calibrated(0.9, "Coffee", "Brand") < 0.3
    assert rec.calibrated(0.0, "Coffee", "Flavor") == 0.0  # a guard's zero is never raised
    for _ in range(6):
        rec.observe_dispute("Coffee", "Size", {"generator": "M"}, "L", "L")
    assert rec.calibrated(0.5, "Coffee", "Size") == 0.5  # a good record does not lift a stated doubt
    assert TrackRecord(TrustConfig(min_answers=3, calibrate=False)).calibrated(0.9, "Coffee", "Brand") == 0.9


def test_rulings_on_attributes_where_the_supervisor_is_usually_wrong_go_to_a_person(enrich_settings):
    sw = make_app(enrich_settings, **{"worker.generator.alt": _brand_reader, "supervisor": _biased_supervisor})
    with sw.db.session() as s:
        Catalog(s).ingest(list(enumerate(LISTINGS)))
    base = {"compiled_worker": False, "supervisor_budget": 0.0, "generator_examples": 0}
    EnrichmentLoop(sw, LoopConfig(audit_rulings=1.0, trust=TrustConfig(min_answers=2), **base)).run_batch(
        ["c1", "c2"], batch_id="b1")
    with sw.db.session() as s:
        queue = ReviewQueue(s)
        for item in queue.list("open"):
            queue.resolve(item.id, "Brewhaus", learn=False)
    # Settling by the record is off here, so the (confident, usually wrong) supervisor is asked again.
    no_settling = TrustConfig(min_answers=2, enabled=False)
    results = []
    EnrichmentLoop(sw, LoopConfig(learn=False, trust=no_settling, **base)).run_batch(
        ["c3"], batch_id="b2", on_product=results.append)
    assert results[0].supervisor_calls == 1 and results[0].statuses["Brand"] == "review"
    with sw.db.session() as s:
        [ruling] = [e.event for e in EventLog(s).read("supervisor_ruling", product_id="c3")]
        assert ruling.confidence < 0.5 and ruling.sent_to_review
        assert [i.product_id for i in ReviewQueue(s).list("open")] == ["c3"]
    sw.close()


def test_a_flag_on_a_single_source_value_scores_the_evaluator_and_can_settle_it():
    rec = _record()
    for _ in range(3):  # one value between the workers: it reached review through the evaluator's flag
        rec.observe_dispute("Coffee", "Flavor", {"generator": "Whole Bean", "generator.alt": None}, "Whole Bean", None)
    assert rec.answers(EVALUATOR) == 3 and rec.accuracy(EVALUATOR, "Coffee", "Flavor") > 0.7
    assert rec.accuracy(SUPERVISOR, "Coffee", "Flavor") < 0.3
    verdict = rec.drop("Coffee", "Flavor", product_id="p1")
    assert verdict is not None and verdict.value is None and "confirmed flags" in verdict.reason
    rec.observe_dispute("Coffee", "Brand", {"generator": "K-Cup", "generator.alt": "Brewhaus"}, "K-Cup", "Brewhaus")
    assert rec.answers(EVALUATOR) == 3  # a clash between two values is not a flag
    assert _record(min_answers=4).drop("Coffee", "Flavor") is None  # too few answers: the supervisor decides
    assert TrackRecord(TrustConfig(min_answers=3, enabled=False)).drop("Coffee", "Flavor") is None


def _fills_flavor(request) -> str:  # type: ignore[no-untyped-def]
    """The panel's second model: abstains on the brand and reads the pod format as a flavour."""
    out = json.loads(generator_double(request))
    out["Brand"] = None
    if "Flavor" in out:
        out["Flavor"] = "K-Cup Pods"
    return json.dumps(out)


def _flavor_flagging_evaluator(request) -> str:  # type: ignore[no-untyped-def]
    return verdict(asked(request)[0] != "Flavor", "other attribute")


def _flavor_supervisor(request) -> str:  # type: ignore[no-untyped-def]
    return json.dumps({"action": "answer", "rulings": [
        {"attribute": "Flavor", "value": "K-Cup Pods", "why_disagreed": "flagged", "confidence": 0.9}]})


def test_confirmed_flags_let_the_loop_drop_a_flagged_value_without_the_supervisor(enrich_settings):
    sw = make_app(enrich_settings, **{"worker.generator.alt": _fills_flavor, "supervisor": _flavor_supervisor,
                                      "worker.evaluator": _flavor_flagging_evaluator})
    with sw.db.session() as s:
        Catalog(s).ingest(list(enumerate(LISTINGS)))
    trust = TrustConfig(min_answers=2, explore=0.0)
    base = {"compiled_worker": False, "supervisor_budget": 0.0, "generator_examples": 0, "trust": trust}
    first = EnrichmentLoop(sw, LoopConfig(audit_rulings=1.0, **base)).run_batch(["c1", "c2"], batch_id="b1")
    assert first.supervisor_calls == 2 and first.trusted == 0
    with sw.db.session() as s:
        queue = ReviewQueue(s)
        for item in queue.list("open"):
            assert item.attribute == "Flavor"
            queue.resolve(item.id, None, learn=False)  # the listing states no flavour: the flag was right
    calls = len(sw.backends["supervisor"].requests)
    results = []
    second = EnrichmentLoop(sw, LoopConfig(learn=False, **base)).run_batch(["c3"], batch_id="b2",
                                                                        on_product=results.append)
    assert second.supervisor_calls == 0 and second.trusted == 1 and second.disagreements == 1
    assert len(sw.backends["supervisor"].requests) == calls
    assert results[0].statuses["Flavor"] == "empty" and "Flavor" not in results[0].values
    with sw.db.session() as s:
        [event] = [e.event for e in EventLog(s).read("disagreement", product_id="c3")]
        assert any("settled by track record: evaluator" in r for r in event.reasons)
    # An evaluator that gives no usable verdict raised no flag: its record must not drop the value.
    sw.backends["worker.evaluator"].responder = lambda request: "not json"
    broken = EnrichmentLoop(sw, LoopConfig(learn=False, **base)).run_batch(["c4"], batch_id="b3")
    assert broken.trusted == 0 and broken.supervisor_calls == 1
    sw.close()


def test_a_generator_people_keep_overruling_is_benched_in_that_category_only():
    rec = _record(min_answers=3, bench_below=0.3)
    panel = ["generator", "generator.alt"]
    assert rec.benched("Coffee", panel) == set()  # no answers: no opinion
    for _ in range(6):
        rec.observe_dispute("Coffee", "Brand", {"generator": "K-Cup Pods", "generator.alt": "Brewhaus"},
                            "K-Cup Pods", "Brewhaus")
    assert rec.benched("Coffee", panel) == {"generator"}
    assert rec.benched("Coffee", ["generator"]) == set()  # never the last generator
    # Another category inherits the overall record, shrunk, so it benches there too only once that is clear.
    assert rec.accuracy("generator", "Shoes", "Brand") > rec.accuracy("generator", "Coffee", "Brand")
    assert _record(min_answers=3).benched("Coffee", panel) == set()  # bench_below 0: off


def test_a_benched_generator_is_still_consulted_on_the_explore_share():
    rec = TrackRecord(TrustConfig(min_answers=3, explore=0.5, bench_below=0.3))
    for _ in range(6):
        rec.observe_dispute("Coffee", "Brand", {"generator": "K-Cup", "generator.alt": "Brewhaus"},
                            "K-Cup", "Brewhaus")
    panel = ["generator", "generator.alt"]
    picks = [bool(rec.benched("Coffee", panel, product_id=f"p{i}")) for i in range(200)]
    assert 60 < sum(picks) < 140  # about half still consult it
    assert picks == [bool(rec.benched("Coffee", panel, product_id=f"p{i}")) for i in range(200)]  # stable


def test_the_loop_skips_a_benched_generator_and_says_so(enrich_settings):
    sw = make_app(enrich_settings, **{"worker.generator.alt": _brand_reader, "supervisor": _biased_supervisor})
    with sw.db.session() as s:
        Catalog(s).ingest(list(enumerate(LISTINGS)))
    trust = TrustConfig(min_answers=2, explore=0.0, bench_below=0.3)
    base = {"compiled_worker": False, "supervisor_budget": 0.0, "generator_examples": 0, "trust": trust}
    EnrichmentLoop(sw, LoopConfig(audit_rulings=1.0, **base)).run_batch(["c1", "c2"], batch_id="b1")
    _resolve_open(sw, "Brewhaus")
    calls = len(sw.backends["worker.generator"].requests)
    report, results = _second_batch(sw, base)
    assert report.benched == 2 and report.disagreements == 0 and report.supervisor_calls == 0
    assert all(r.benched == ["generator"] for r in results), [r.benched for r in results]
    assert len(sw.backends["worker.generator"].requests) == calls  # not asked at all
    sw.close()


def test_nested_spans_are_whole_word_runs_of_the_longer_value():
    assert nested_spans("two rivers coffee", "two rivers") == ("two rivers", "two rivers coffee")
    assert nested_spans("8400", "ellie shoes 8400 red") == ("8400", "ellie shoes 8400 red")
    assert nested_spans("rive", "rivers") is None  # not a whole word
    assert nested_spans("coffee rivers", "two rivers coffee") is None  # not a run
    assert nested_spans("k-cup", "k-cup") is None


def _nested(rec: TrackRecord, attribute: str, short: str, long: str, truth: str | None, n: int) -> None:
    """``n`` confirmed nested disputes in which the supervisor proposed the span that was not ``truth``."""
    proposed = short if truth == long else long
    for _ in range(n):
        rec.observe_dispute("Coffee", attribute, {"generator": long, "generator.alt": short}, proposed, truth)


def test_a_span_convention_is_learned_per_attribute_from_confirmed_nested_disputes():
    rec = _record(min_answers=3, span_min_answers=3, span_conventions=True)
    brand = _cands(generator="Two Rivers Coffee", generator_alt="Two Rivers", kb=None)
    assert rec.convention("Coffee", "Brand", brand) is None  # no answers: no convention
    _nested(rec, "Brand", "Two Rivers", "Two Rivers Coffee", "Two Rivers", 2)
    assert rec.convention("Coffee", "Brand", brand) is None  # below span_min_answers
    _nested(rec, "Brand", "Two Rivers", "Two Rivers Coffee", "Two Rivers", 2)
    verdict = rec.convention("Coffee", "Brand", brand)
    assert verdict is not None and verdict.worker == SHORTER and verdict.value == "Two Rivers"
    assert "span convention: the shorter" in verdict.reason
    # Which span is right is the attribute's own convention: the same record takes the longer one elsewhere.
    _nested(rec, "Item form", "Pods", "K-Cup Pods", "K-Cup Pods", 4)
    form = rec.convention("Coffee", "Item form", _cands(generator="Pods", generator_alt="K-Cup Pods"))
    assert form is not None and form.worker == LONGER and form.value == "K-Cup Pods"
    # Only two nested values: a third reading, a non-nested clash or a value from the KB lookup is a dispute.
    assert rec.convention("Coffee", "Brand", _cands(generator="Two Rivers Coffee", generator_alt="Two Rivers",
                                                    kb="Rivers")) is None
    assert rec.convention("Coffee", "Brand", _cands(generator="Two Rivers", generator_alt="Brewhaus")) is None
    assert _record(min_answers=3, span_min_answers=3).convention("Coffee", "Brand", brand) is None  # off by default


def test_no_convention_where_neither_span_is_usually_right():
    rec = _record(min_answers=3, span_min_answers=3, span_conventions=True)
    _nested(rec, "Flavor", "Vanilla", "French Vanilla Roast", "French Vanilla", 6)  # a third span each time
    assert rec.convention("Coffee", "Flavor", _cands(generator="French Vanilla Roast", generator_alt="Vanilla")) is None
    # ... and none while the supervisor, right as often, is the better bet.
    rec2 = _record(min_answers=3, span_min_answers=3, span_conventions=True)
    for _ in range(6):
        rec2.observe_dispute("Coffee", "Brand", {"generator": "Two Rivers Coffee", "generator.alt": "Two Rivers"},
                             "Two Rivers", "Two Rivers")
    assert rec2.convention("Coffee", "Brand", _cands(generator="Two Rivers Coffee", generator_alt="Two Rivers")) is None


def _long_brand_reader(request) -> str:  # type: ignore[no-untyped-def]
    """Reads the brand and the roast name as one brand: 'Brewhaus French Roast'."""
    out = json.loads(generator_double(request))
    out["Brand"] = " ".join(listing_title(request).split()[:3])
    return json.dumps(out)


def _short_brand_reader(request) -> str:  # type: ignore[no-untyped-def]
    out = json.loads(generator_double(request))
    out["Brand"] = listing_title(request).split()[0]
    return json.dumps(out)


def _long_span_supervisor(request) -> str:  # type: ignore[no-untyped-def]
    brand = " ".join(listing_title(request).split()[:3])
    return json.dumps({"action": "answer", "rulings": [
        {"attribute": "Brand", "value": brand, "why_disagreed": "spans differ", "confidence": 0.9}]})


def test_a_learned_span_convention_turns_nested_clashes_into_agreement(enrich_settings):
    sw = make_app(enrich_settings, **{"worker.generator": _long_brand_reader,
                                      "worker.generator.alt": _short_brand_reader,
                                      "supervisor": _long_span_supervisor})
    with sw.db.session() as s:
        Catalog(s).ingest(list(enumerate(LISTINGS)))
    trust = TrustConfig(min_answers=2, span_min_answers=2, explore=0.0, span_conventions=True)
    base = {"compiled_worker": False, "supervisor_budget": 0.0, "generator_examples": 0, "trust": trust}
    first = EnrichmentLoop(sw, LoopConfig(audit_rulings=1.0, **base)).run_batch(["c1", "c2"], batch_id="b1")
    assert first.disagreements == 2 and first.supervisor_calls == 2 and first.conventions == 0
    _resolve_open(sw, "Brewhaus")  # people confirm the shorter span both times; the supervisor took the longer
    second, results = _second_batch_without_calls(sw, base)
    assert second.conventions == 2 and second.disagreements == 0 and second.supervisor_calls == 0
    assert all(r.values["Brand"] == "Brewhaus" and r.statuses["Brand"] == "convention" for r in results)
    with sw.db.session() as s:
        assert not list(EventLog(s).read("disagreement", product_id="c3"))
        [stored] = [e.event for e in EventLog(s).read("extraction", product_id="c3") if e.event.attribute == "Brand"]
        assert stored.value == "Brewhaus" and stored.status == "convention"
        health = {b.batch_id: b for b in health_report(s).batches}
    assert health["b2"].conventions == 2 and health["b2"].disagreement_rate == 0.0
    sw.close()
