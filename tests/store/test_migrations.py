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
