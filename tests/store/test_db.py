"""Opening the database: bad locations and URLs are configuration errors, a held lock is a store error."""

import pytest

import shelfwise.store.db as dbmod
from shelfwise.errors import ConfigError, StoreError
from shelfwise.store.db import Database
from shelfwise.store.models import Product


def test_a_home_that_is_a_file_is_a_config_error(tmp_path):
    (tmp_path / "afile").write_text("")
    with pytest.raises(ConfigError) as exc:
        Database(f"sqlite:///{tmp_path / 'afile' / 'shelfwise.db'}")
    assert "is a file" in str(exc.value) and "SHELFWISE_HOME" in exc.value.fix


@pytest.mark.parametrize("url", ["mysq://x", "not a url", "postgresql+nosuchdriver://u:secret@h/db"])
def test_an_unusable_database_url_is_a_config_error(url):
    with pytest.raises(ConfigError) as exc:
        Database(url)
    assert "SHELFWISE_DATABASE_URL" in exc.value.fix and "secret" not in str(exc.value)


def test_a_locked_database_is_a_store_error_naming_the_fix(tmp_path, monkeypatch):
    monkeypatch.setattr(dbmod, "BUSY_TIMEOUT_MS", 200)
    url = f"sqlite:///{tmp_path / 'x.db'}"
    first, second = Database(url), Database(url)
    first.migrate()
    try:
        with first.write_session() as s1:
            s1.add(Product(id="a", title="t", version=1, deleted=False, content_hash="h"))
            s1.flush()
            with pytest.raises(StoreError) as exc, second.write_session() as s2:
                s2.add(Product(id="b", title="t", version=1, deleted=False, content_hash="h"))
        assert "locked" in str(exc.value) and "re-run" in exc.value.fix
    finally:
        first.dispose()
        second.dispose()


def test_a_write_session_holds_the_write_lock_from_its_start(tmp_path, monkeypatch):
    # A plain session reads first and writes later; if another writer commits in between, SQLite refuses the
    # write at once (busy_timeout does not help). write_session takes the lock before the first read.
    monkeypatch.setattr(dbmod, "BUSY_TIMEOUT_MS", 200)
    url = f"sqlite:///{tmp_path / 'x.db'}"
    first, second = Database(url), Database(url)
    first.migrate()
    try:
        with second.write_session() as s2:
            s2.get(Product, "a")  # only a read so far
            with pytest.raises(StoreError, match="locked"), first.session() as s1:
                s1.add(Product(id="a", title="t", version=1, deleted=False, content_hash="h"))
            s2.add(Product(id="b", title="t", version=1, deleted=False, content_hash="h"))
        with first.session() as s1:
            assert s1.get(Product, "b") is not None
    finally:
        first.dispose()
        second.dispose()
