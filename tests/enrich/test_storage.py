"""The loop's storage on SQLite and PostgreSQL: batches, values with their trace, review items, stats."""

from __future__ import annotations

from sqlalchemy import select

from shelfwise.app import Shelfwise
from shelfwise.config import EmbedderConfig, Settings
from shelfwise.enrich import EnrichmentLoop, ReviewQueue
from shelfwise.enrich.health import health_report
from shelfwise.enrich.kb import KnowledgeBase
from shelfwise.enrich.models import EnrichBatch
from shelfwise.llm.backends.scripted import ScriptedBackend
from shelfwise.store import Catalog
from shelfwise.store.models import ExtractedValue, Product
from tests.enrich.conftest import LISTINGS, evaluator_double, generator_double, manager_double
from tests.enrich.doubles import cautious_generator_double


def test_loop_storage_on_any_database(any_db, tmp_path):
    import json

    settings = Settings(home=tmp_path / "home", embedder=EmbedderConfig(backend="hashing"), llm_cache=False)
    sw = Shelfwise(settings, any_db)
    unsure_then_sure = iter([0.2, 0.9, 0.9, 0.9])
    sup = lambda _r: json.dumps({"action": "answer", "rulings": [{
        "attribute": "Brand", "value": "Brewhaus", "why_disagreed": "pod format", "confidence": next(unsure_then_sure)}]})
    for role, fn in {"worker.generator": generator_double, "worker.generator.alt": cautious_generator_double,
                     "worker.evaluator": evaluator_double,
                     "supervisor": sup, "memory.manager": manager_double}.items():
        sw.llms.set_backend(role, ScriptedBackend(model=f"double-{role}", responder=fn))
    with sw.db.session() as s:
        Catalog(s).ingest(list(enumerate(LISTINGS)))
    loop = EnrichmentLoop(sw)
    first = loop.run_batch(["c1", "c2"])
    assert first.reviews == 1
    with sw.db.session() as s:
        [item] = ReviewQueue(s).list()
        ReviewQueue(s, KnowledgeBase(s)).resolve(item.id, "Brewhaus")
    loop.run_batch(["c3", "c4"])
    with sw.db.session() as s:
        assert [b.status for b in s.scalars(select(EnrichBatch).order_by(EnrichBatch.seq))] == ["done", "done"]
        rows = list(s.scalars(select(ExtractedValue).where(ExtractedValue.attribute == "Brand",
                                                           ExtractedValue.is_current.is_(True))))
        assert {r.product_id: r.status for r in rows}["c1"] == "human"
        assert all(r.value == "Brewhaus" for r in rows)
        rep = health_report(s)
    assert [b.seq for b in rep.batches] == [1, 2]
    sw.recorder.flush()


def test_fill_rates_category_filters_and_pending_products_on_any_database(any_db, tmp_path):
    from shelfwise.cli.enrich import pending_products
    from shelfwise.enrich.escalation import FillRates
    from shelfwise.store import Listing
    from tests.enrich.doubles import make_app

    settings = Settings(home=tmp_path / "home", embedder=EmbedderConfig(backend="hashing"), llm_cache=False)
    sw = make_app(settings)
    sw.db = any_db
    with sw.db.session() as s:
        Catalog(s).ingest(list(enumerate([*LISTINGS, Listing(id="m1", title="Drip Maker", category_path="Coffee Makers"),
                                          Listing(id="g1", title="Beans 100%_off", category_path="Grocery > Coffee")])))
        assert {p.id for p in Catalog(s).products(category_prefix="coffee")} == {"c1", "c2", "c3", "c4"}
        assert {p.id for p in Catalog(s).products(category_prefix="Grocery")} == {"g1"}
        Catalog(s).ingest([(0, Listing(id="e1", title="Écran", category_path="Électronique > Écrans"))])
        assert [p.id for p in Catalog(s).products(category_prefix="électronique")] == ["e1"], "beyond ASCII"
        s.get(Product, "g1").category_path = "Grocery>Coffee"  # as stores written before paths were tidied
        s.flush()
        assert [p.id for p in Catalog(s).products(category_prefix="grocery > coffee", limit=5)] == ["g1"]
        s.get(Product, "g1").category_path = "Grocery > Coffee"
        s.get(Product, "e1").deleted = True
        assert pending_products(s, "COFFEE", 10) == ["c1", "c2", "c3", "c4"]
    EnrichmentLoop(sw).run_batch(["c1", "c2"], batch_id="b1")
    with sw.db.session() as s:
        rates = FillRates.from_store(s, ["Coffee"])
        assert rates.products == {"Coffee": 2} and rates.filled[("Coffee", "Net content")] == 2
        assert FillRates.from_store(s, ["Coffee"], exclude_job="enrich:b1").products == {}
        assert pending_products(s, "Coffee", 10) == ["c3", "c4"]
    sw.close()
