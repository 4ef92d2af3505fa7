"""The loop end to end on test doubles: disagreement → supervisor → learning → fewer disagreements."""

from __future__ import annotations

from sqlalchemy import select

from shelfwise.enrich import EnrichmentLoop
from shelfwise.enrich.kb import KnowledgeBase
from shelfwise.enrich.supervisor import SUPERVISOR_PROMPT_VERSION
from shelfwise.store import EventLog
from shelfwise.store.models import ExtractedValue


def current(sw, pid):  # type: ignore[no-untyped-def]
    with sw.db.session() as s:
        rows = s.scalars(select(ExtractedValue).where(ExtractedValue.product_id == pid,
                                                      ExtractedValue.is_current.is_(True)))
        return {r.attribute: r for r in rows}


def test_disagreement_supervisor_learning_then_fewer_disagreements(scripted_sw):
    loop = EnrichmentLoop(scripted_sw)
    first = loop.run_batch(["c1", "c2"])
    assert first.disagreements >= 1 and first.supervisor_calls >= 1
    assert current(scripted_sw, "c1")["Brand"].value == "Brewhaus"
    assert current(scripted_sw, "c1")["Brand"].status == "supervised"
    assert current(scripted_sw, "c1")["Brand"].prompt_version == SUPERVISOR_PROMPT_VERSION
    with scripted_sw.db.session() as s:
        learnings = KnowledgeBase(s).list(status="active")
        assert any("Brewhaus" in lv.normalize.values() for lv in learnings)
        types = [e.event.type for e in EventLog(s).read(product_id="c1")]
        assert "disagreement" in types and "supervisor_ruling" in types and "extraction" in types
    second = loop.run_batch(["c3", "c4"])
    assert second.disagreements < first.disagreements
    assert second.supervisor_calls < first.supervisor_calls
    brand = current(scripted_sw, "c3")["Brand"]
    assert brand.value == "Brewhaus" and brand.status == "agreed"
    assert brand.learning_ids, "a value records the learnings that were in its prompt"
    assert "compiled-kb" in brand.model


def test_crash_mid_batch_resumes_without_losing_or_duplicating(scripted_sw, enrich_settings):
    from sqlalchemy import func

    from tests.enrich.conftest import generator_double, make_app

    calls = {"n": 0}

    def crashing(request):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 3:  # the third product dies mid-batch
            raise RuntimeError("power cut")
        return generator_double(request)

    sw = make_app(enrich_settings, **{"worker.generator": crashing})
    ids = ["c1", "c2", "c3", "c4"]
    loop = EnrichmentLoop(sw)
    batch = loop.open_batch(ids)
    try:
        loop.run_batch(ids, batch_id=batch.id)
    except RuntimeError:
        pass
    else:  # pragma: no cover - the double must crash
        raise AssertionError("expected the crash")
    with sw.db.session() as s:
        assert s.scalar(select(func.count()).select_from(ExtractedValue).where(
            ExtractedValue.product_id == "c3")) == 0, "the product in flight left nothing behind"
    assert loop.running_batch().id == batch.id
    report = EnrichmentLoop(sw).run_batch(ids, batch_id=batch.id)
    assert report.products == 4
    assert calls["n"] == 5, "only the crashed product and the one after it ran again"
    with sw.db.session() as s:
        per_attr = s.execute(select(ExtractedValue.product_id, ExtractedValue.attribute, func.count())
                             .where(ExtractedValue.is_current.is_(True))
                             .group_by(ExtractedValue.product_id, ExtractedValue.attribute)).all()
        assert per_attr and all(n == 1 for _p, _a, n in per_attr)
        assert {p for p, _a, _n in per_attr} == set(ids)
    again = EnrichmentLoop(sw).run_batch(ids, batch_id=batch.id)  # idempotent: nothing re-runs
    assert calls["n"] == 5 and again.products == 4
    sw.close()


def test_low_confidence_goes_to_review_and_resolution_becomes_label_and_learning(enrich_settings):
    import json

    from shelfwise.enrich import ReviewQueue
    from shelfwise.store import Catalog
    from tests.enrich.conftest import LISTINGS, make_app

    unsure = lambda _r: json.dumps({"action": "answer", "rulings": [
        {"attribute": "Brand", "value": "Brewhaus", "why_disagreed": "unclear", "confidence": 0.2}]})
    sw = make_app(enrich_settings, supervisor=unsure)
    with sw.db.session() as s:
        Catalog(s).ingest([(0, LISTINGS[0])])
    report = EnrichmentLoop(sw).run_batch(["c1"])
    assert report.reviews == 1
    assert "Brand" not in current(sw, "c1")
    with sw.db.session() as s:
        queue = ReviewQueue(s, KnowledgeBase(s))
        [item] = queue.list()
        assert item.attribute == "Brand" and item.proposed == "Brewhaus"
        done = queue.resolve(item.id, "Brewhaus", actor="ana")
        assert done.learning_id is not None
        assert queue.list() == []
        with_learning = KnowledgeBase(s).normalizers("Coffee", "Brand")
        assert "Brewhaus" in with_learning.values()
    value = current(sw, "c1")["Brand"]
    assert value.status == "human" and value.model == "human:ana"
    sw.close()


def test_titles_go_through_the_same_loop(scripted_sw):
    from shelfwise.enrich import LoopConfig

    EnrichmentLoop(scripted_sw, LoopConfig(titles=True)).run_batch(["c1"])
    title = current(scripted_sw, "c1")["title"]
    assert "Brewhaus" in title.value and "24 Count" in title.value and len(title.value) <= 120


def test_health_report_and_chart(scripted_sw, tmp_path):
    from shelfwise.enrich.health import health_report, write_chart

    loop = EnrichmentLoop(scripted_sw)
    loop.run_batch(["c1", "c2"])
    loop.run_batch(["c3", "c4"])
    with scripted_sw.db.session() as s:
        rep = health_report(s)
    assert [b.seq for b in rep.batches] == [1, 2]
    assert rep.batches[0].disagreement_rate > rep.batches[1].disagreement_rate
    assert rep.batches[0].supervisor_rate > rep.batches[1].supervisor_rate
    brand = next(a for a in rep.attributes if a.attribute == "Brand")
    assert brand.learnings >= 1 and brand.before is not None and brand.after is not None
    assert brand.after < brand.before
    png = write_chart(rep, tmp_path / "h.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_invalid_json_from_the_generator_does_not_stop_the_batch(enrich_settings):
    from shelfwise.store import Catalog
    from tests.enrich.conftest import LISTINGS, make_app

    sw = make_app(enrich_settings, **{"worker.generator": lambda _r: "sorry, I cannot do JSON"})
    with sw.db.session() as s:
        Catalog(s).ingest([(0, LISTINGS[0]), (1, LISTINGS[1])])
    report = EnrichmentLoop(sw).run_batch(["c1", "c2"])
    assert report.products == 2 and report.disagreements == 0
    assert len(sw.backends["worker.generator"].requests) == 2 * 3, "each product: first try + 2 retries"
    sw.close()
