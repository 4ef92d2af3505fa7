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
from shelfwise.store.models import ExtractedValue
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
