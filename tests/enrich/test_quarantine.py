"""One bad product never blocks enrichment; changed listings are enriched again; the report counts once."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from shelfwise.enrich import EnrichmentLoop, LoopConfig
from shelfwise.enrich.health import health_report
from shelfwise.errors import InputError
from shelfwise.store import Catalog, Listing
from shelfwise.store.models import ExtractedValue, Product
from tests.enrich.doubles import LISTINGS


def test_unknown_ids_are_refused_before_a_batch_is_opened(scripted_sw):
    loop = EnrichmentLoop(scripted_sw, LoopConfig())
    with pytest.raises(InputError, match="'nope'"):
        loop.run_batch(["c1", "nope"])
    assert loop.running_batch() is None, "nothing was opened that could never finish"


def test_a_product_that_cannot_be_enriched_is_set_aside_and_the_batch_finishes(scripted_sw):
    loop = EnrichmentLoop(scripted_sw, LoopConfig())
    loop.open_batch(["c1", "c3", "c2"], "b1")
    with scripted_sw.db.session() as s:  # withdrawn by its seller while the batch waited
        Catalog(s).delete("c3")
    report = loop.run_batch(["c1", "c3", "c2"], batch_id="b1")
    assert set(report.failed) == {"c3"} and "no product with id 'c3'" in report.failed["c3"]
    assert report.products == 2 and loop.running_batch() is None
    again = loop.run_batch(["c1", "c3", "c2"], batch_id="b1")  # a resumed run does not retry it
    assert set(again.failed) == {"c3"} and again.products == 2
    with scripted_sw.db.session() as s:
        Catalog(s).ingest([(0, LISTINGS[2])])  # listed again
    assert loop.retry_failed("b1") == 1 and loop.running_batch().id == "b1"
    fixed = loop.run_batch(["c1", "c3", "c2"], batch_id="b1")
    assert fixed.failed == {} and fixed.products == 3
    with scripted_sw.db.session() as s:
        assert s.scalar(select(ExtractedValue.value).where(ExtractedValue.product_id == "c3",
                                                           ExtractedValue.is_current.is_(True))) is not None
        assert len(health_report(s).batches) == 1, "the re-run batch's stats are written once"
        assert health_report(s).batches[0].products == 3


def test_listing_category_paths_are_tidied_and_bounded():
    assert Listing(id="a", title="t", category_path="Grocery >> Coffee > ").category_path == "Grocery > Coffee"
    with pytest.raises(ValueError, match="at most 512"):
        Listing(id="a", title="t", category_path="x" * 600)


def test_report_counts_products_and_learnings_once(scripted_sw):
    loop = EnrichmentLoop(scripted_sw, LoopConfig(supervisor_budget=1.0))
    report = loop.run_batch(["c1", "c2"])
    with scripted_sw.db.session() as s:
        batch = health_report(s).batches[0]
    assert batch.products == report.products == 2
    assert batch.learnings == report.learnings_written
    assert batch.supervisor_rate == pytest.approx(report.supervisor_calls / 2)


def _cli(monkeypatch, sw):  # type: ignore[no-untyped-def]
    import shelfwise.cli.enrich as cli_enrich
    from shelfwise.cli.main import app

    monkeypatch.setattr(cli_enrich, "open_app", lambda migrate=True: sw)
    monkeypatch.setattr(sw, "close", lambda: None)
    runner = CliRunner()
    return lambda *args: runner.invoke(app, list(args))


def test_cli_enriches_changed_listings_again_and_filters_categories_by_segment(monkeypatch, scripted_sw):
    with scripted_sw.db.session() as s:
        Catalog(s).ingest([(0, Listing(id="m1", title="Drip Coffee Maker, 12 Cup", category_path="Coffee Makers"))])
    run = _cli(monkeypatch, scripted_sw)
    res = run("enrich", "--batch-size", "10", "--no-titles", "--category", "coffee")
    assert res.exit_code == 0, res.output
    with scripted_sw.db.session() as s:
        enriched = set(s.scalars(select(ExtractedValue.product_id)))
    assert enriched == {"c1", "c2", "c3", "c4"}, "'coffee' holds Coffee (any case), not 'Coffee Makers'"
    assert "no products left" in run("enrich", "--no-titles", "--category", "Coffee").output
    with scripted_sw.db.session() as s:
        Catalog(s).ingest([(0, Listing(id="c1", title="Brewhaus French Roast Ground Coffee, 12 Count",
                                       category_path="Coffee"))])
    res = run("enrich", "--no-titles", "--category", "Coffee")
    assert res.exit_code == 0, res.output
    with scripted_sw.db.session() as s:
        net = s.scalar(select(ExtractedValue.value).where(ExtractedValue.product_id == "c1",
                                                          ExtractedValue.attribute == "Net content",
                                                          ExtractedValue.is_current.is_(True)))
        assert net == "12 Count", "the changed listing was read again"
        assert s.get(Product, "m1") is not None


def test_cli_reports_products_set_aside_and_retries_them(monkeypatch, scripted_sw):
    loop = EnrichmentLoop(scripted_sw, LoopConfig())
    loop.open_batch(["c1", "c2"], "b1")
    with scripted_sw.db.session() as s:
        Catalog(s).delete("c2")
    run = _cli(monkeypatch, scripted_sw)
    res = run("enrich", "--batch-size", "10", "--no-titles", "--category", "Coffee")
    assert res.exit_code == 0, res.output
    assert "set aside c2" in res.output and "--retry-failed" in res.output
    with scripted_sw.db.session() as s:
        Catalog(s).ingest([(0, LISTINGS[1])])
    res = run("enrich", "--no-titles", "--retry-failed", "--category", "Coffee")
    assert res.exit_code == 0 and "1 failed products queued again" in res.output, res.output
    with scripted_sw.db.session() as s:
        assert s.scalar(select(ExtractedValue.value).where(ExtractedValue.product_id == "c2",
                                                           ExtractedValue.is_current.is_(True))) is not None
    assert run("enrich", "--executor", "bogus").exit_code == 1
    assert run("review", "list", "--status", "bogus").exit_code == 2


def test_a_category_learning_does_not_reach_a_sibling_whose_name_it_prefixes(scripted_sw):
    from shelfwise.enrich.compiled import PATTERN_PREFIX
    from shelfwise.enrich.kb import KnowledgeBase, LearningDraft
    from shelfwise.enrich.product import KnowledgeCache

    with scripted_sw.db.session() as s:
        kb = KnowledgeBase(s)
        kb.add(LearningDraft(category_path="Coffee", attribute="Net content", text="count shapes",
                             examples=[f"{PATTERN_PREFIX} <n> Count"]), status="active", actor="test")
        cfg = LoopConfig()
        _l, _s, own, _x = KnowledgeCache().get(kb, "Coffee > Pods", ["Net content"], cfg)
        _l, _s, sibling, _x = KnowledgeCache().get(kb, "Coffee Makers", ["Net content"], cfg)
    assert own["Net content"] and not sibling["Net content"], "'Coffee' holds 'Coffee > Pods', not 'Coffee Makers'"


def test_a_listing_changed_while_its_batch_ran_is_enriched_again(scripted_sw):
    from shelfwise.cli.enrich import pending_products

    def seller_edits_c2(result):  # type: ignore[no-untyped-def]
        if result.product_id == "c1":  # c2 was already read (prefetched) from its old text
            with scripted_sw.db.session() as s:
                Catalog(s).ingest([(0, Listing(id="c2", title="Brewhaus Pike Place Ground Coffee, 12 Count",
                                               category_path="Coffee"))])

    EnrichmentLoop(scripted_sw, LoopConfig(commit_every=1)).run_batch(["c1", "c2"], on_product=seller_edits_c2)
    with scripted_sw.db.session() as s:
        assert pending_products(s, "Coffee", 10) == ["c2", "c3", "c4"]
