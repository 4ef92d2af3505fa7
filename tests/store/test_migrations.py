import pytest
from sqlalchemy import inspect

from shelfwise.errors import MigrationError
from shelfwise.store.db import Database


def test_migrate_is_idempotent_and_reaches_every_head(any_db):
    any_db.migrate()
    assert any_db.pending_revisions() == set() and any_db.head_revisions() <= any_db.applied_revisions()
    any_db.check_schema()
    tables = set(inspect(any_db.engine).get_table_names())
    assert {"products", "events", "extracted_values", "llm_calls", "job_items"} <= tables


def test_an_unmigrated_database_is_refused_with_the_fix(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'empty.db'}")
    with pytest.raises(MigrationError, match="shelfwise init"):
        db.check_schema()
    db.dispose()


def test_sqlite_runs_in_wal_mode(db):
    with db.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"


def test_review_items_from_before_enrich_0002_survive_it_and_still_score_the_supervisor(any_db):
    """enrich_0002 adds who proposed an item and the models behind its sources; older rows have neither, and
    the track record must read them as it did before (the supervisor proposed; no model was replaced)."""
    from datetime import datetime

    import sqlalchemy as sa
    from alembic import command

    from shelfwise.enrich import TrackRecord

    command.downgrade(any_db._alembic_config(), "enrich_0001")
    assert "proposed_by" not in {c["name"] for c in inspect(any_db.engine).get_columns("enrich_review_items")}
    old = sa.table("enrich_review_items", *(sa.column(n) for n in (
        "product_id", "category_path", "attribute", "proposed", "confidence", "reason", "status", "resolution",
        "created_at")), sa.column("candidates", sa.JSON))
    with any_db.engine.begin() as conn:
        conn.execute(old.insert().values(
            product_id="p1", category_path="Coffee", attribute="Brand", proposed="K-Cup", confidence=0.5,
            reason="workers gave different values", status="resolved", resolution="Brewhaus",
            created_at=datetime(2026, 1, 1), candidates=[{"worker": "generator", "value": "K-Cup", "key": "k-cup"}]))
    any_db.migrate()
    any_db.check_schema()
    with any_db.session() as s:
        record = TrackRecord.from_reviews(s, models={"generator": "any", "supervisor": "any"})
    assert record.answers("supervisor") == 1 and record.answers("generator") == 1
    assert record.accuracy("supervisor", "Coffee", "Brand") < 0.5  # scored, and wrong
