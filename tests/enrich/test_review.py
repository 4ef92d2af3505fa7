"""The review queue's answers: a blank answer is "not stated" (NULL), and the reviewer's name is checked."""

from __future__ import annotations

import json

import pytest

from shelfwise.enrich import EnrichmentLoop, ReviewQueue
from shelfwise.enrich.kb import KnowledgeBase
from shelfwise.errors import InputError
from shelfwise.store import Catalog
from shelfwise.store.models import ExtractedValue

from .doubles import LISTINGS, make_app


def _unsure(_request) -> str:  # type: ignore[no-untyped-def]
    return json.dumps({"action": "answer", "rulings": [
        {"attribute": "Brand", "value": "Brewhaus", "why_disagreed": "unclear", "confidence": 0.2}]})


@pytest.fixture
def queued(enrich_settings):  # type: ignore[no-untyped-def]
    sw = make_app(enrich_settings, supervisor=_unsure)
    with sw.db.session() as s:
        Catalog(s).ingest([(0, LISTINGS[0])])
    assert EnrichmentLoop(sw).run_batch(["c1"]).reviews == 1
    yield sw
    sw.close()


def test_a_blank_answer_stores_null_not_an_empty_string(queued):
    with queued.db.session() as s:
        queue = ReviewQueue(s, KnowledgeBase(s))
        [item] = queue.list()
        done = queue.resolve(item.id, "   ", actor="ana")
        assert done.resolution is None and done.learning_id is None
    with queued.db.session() as s:
        row = s.query(ExtractedValue).filter_by(product_id="c1", attribute="Brand", status="human").one()
        assert row.value is None, "blank means the listing does not state it"


def test_an_overlong_reviewer_name_is_refused_with_a_fix_and_nothing_is_stored(queued):
    with queued.db.session() as s:
        queue = ReviewQueue(s, KnowledgeBase(s))
        [item] = queue.list()
        with pytest.raises(InputError, match="fix: pass --actor with a short name"):
            queue.resolve(item.id, "Brewhaus", actor="a" * 1000)
        with pytest.raises(InputError, match="empty reviewer name"):
            queue.resolve(item.id, "Brewhaus", actor="  ")
        assert [i.id for i in queue.list()] == [item.id], "the item is still open"
        done = queue.resolve(item.id, "Brewhaus", actor=" ana\n")
        assert done.resolved_by == "ana"


def test_a_second_resolution_is_a_conflict_and_changes_nothing(queued):
    from shelfwise.errors import ConflictError

    with queued.db.session() as s:
        queue = ReviewQueue(s, KnowledgeBase(s))
        [item] = queue.list()
        queue.resolve(item.id, "Brewhaus", actor="ana")
    with queued.db.session() as s, pytest.raises(ConflictError, match="already resolved"):
        ReviewQueue(s, KnowledgeBase(s)).resolve(item.id, "Other", actor="bo")
    with queued.db.session() as s:
        rows = s.query(ExtractedValue).filter_by(product_id="c1", attribute="Brand", status="human").all()
        assert [r.value for r in rows] == ["Brewhaus"]
