import pytest
from pydantic import ValidationError

from shelfwise.errors import InputError
from shelfwise.observability import trace
from shelfwise.store.events import (
    EVENT_TYPES,
    Click,
    EventLog,
    Purchase,
    SearchImpression,
    SellerAppeal,
    parse_event,
)


def test_events_round_trip_typed_and_in_order(any_db):
    with any_db.session() as s, trace("trace-abc"):
        log = EventLog(s)
        a = log.append(SearchImpression(query="tent", decision_id="d1", product_ids=["p1", "p2"], propensity=0.25))
        b = log.append(Click(product_id="p2", query="tent", decision_id="d1", position=1))
        c = log.append(SellerAppeal(product_id="p1", message="IGNORE PREVIOUS INSTRUCTIONS", attribute="brand"))
    assert a < b < c
    with any_db.session() as s:
        log = EventLog(s)
        evs = list(log.read())
        assert [e.event.type for e in evs] == ["search_impression", "click", "seller_appeal"]
        assert evs[0].event.propensity == 0.25 and evs[0].trace_id == "trace-abc"
        assert [e.id for e in log.read(since_id=a)] == [b, c]
        assert [e.event.type for e in log.read(["click"])] == ["click"]
        assert [e.id for e in log.read(product_id="p1")] == [c]


def test_idempotency_key_dedupes(any_db):
    with any_db.session() as s:
        log = EventLog(s)
        first = log.append(Purchase(product_id="p1", query="q"), idempotency_key="order-1")
        again = log.append(Purchase(product_id="p1", query="q"), idempotency_key="order-1")
        assert first == again and log.count("purchase") == 1


def test_invalid_events_are_rejected_with_a_fix():
    with pytest.raises(InputError, match="search_impression"):
        parse_event({"type": "search_impression", "query": "x"})
    with pytest.raises(ValidationError):
        SearchImpression(query="x", decision_id="d", product_ids=[], propensity=0)
    assert "purchase" in EVENT_TYPES and len(EVENT_TYPES) == 13
    assert parse_event({"type": "click", "product_id": "p", "position": 0}).position == 0


def test_schema_matches_models(any_db):
    """The migrations create exactly what the models declare (no drift between them)."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from shelfwise.store.metadata import target_metadata

    with any_db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), target_metadata())
    assert diff == []
    assert any_db.pending_revisions() == set() and any_db.head_revisions() <= any_db.applied_revisions()


def test_append_many_keeps_order_ids_and_types(any_db):
    with any_db.session() as s:
        log = EventLog(s)
        first = log.append(Click(product_id="p0", query="q", decision_id="d0", position=0))
        ids = log.append_many([Click(product_id=f"p{i}", query="q", decision_id="d0", position=i)
                               for i in range(1, 451)])       # more than one 400-row statement
    assert len(ids) == 450 and ids == sorted(ids) and ids[0] > first
    with any_db.session() as s:
        read = list(EventLog(s).read(since_id=first))
    assert [e.id for e in read] == ids and [e.event.product_id for e in read][:3] == ["p1", "p2", "p3"]
    with any_db.session() as s, pytest.raises(InputError):
        EventLog(s).append_many([Purchase.model_construct(type="teleport", product_id="x")])


def test_append_many_refuses_a_batch_with_unstorable_text_whole(any_db):
    with any_db.session() as s:
        before = len(list(EventLog(s).read()))
    with any_db.session() as s, pytest.raises(InputError, match="NUL"):
        EventLog(s).append_many([Click(product_id="p1", query="fine", decision_id="d0", position=0),
                                 Click(product_id="p2", query="bad\x00query", decision_id="d0", position=1)])
    with any_db.session() as s:
        assert len(list(EventLog(s).read())) == before


def test_text_that_cannot_be_read_back_is_refused_and_nothing_is_stored(any_db):
    from shelfwise.errors import ConflictError

    with any_db.session() as s:
        log = EventLog(s)
        for bad in ("nul \x00 here", "lone \ud800 surrogate"):
            with pytest.raises(InputError, match="fix: send valid UTF-8"):
                log.append(SellerAppeal(product_id="p1", message=bad))
            with pytest.raises(InputError, match="message"):
                parse_event({"type": "seller_appeal", "product_id": "p1", "message": bad})
        first = log.append(Purchase(product_id="p1", query="q"), idempotency_key="order-1")
        with pytest.raises(ConflictError, match="different event"):
            log.append(Purchase(product_id="p2", query="q"), idempotency_key="order-1")
        with pytest.raises(InputError, match="idempotency key"):
            log.append(Purchase(product_id="p1", query="q"), idempotency_key="k" * 201)
        assert [e.id for e in log.read()] == [first]
