"""`shelfwise ingest` on damaged input and a busy database: a clear error, and nothing already saved is lost."""

from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select
from typer.testing import CliRunner

import shelfwise.store.db as dbmod
from shelfwise.cli.main import app
from shelfwise.errors import StoreError
from shelfwise.store import Catalog
from shelfwise.store.models import CategorySchema, Product

runner = CliRunner()


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("SHELFWISE_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def _count(home: Path, model=Product) -> int:
    engine = create_engine(f"sqlite:///{home / 'shelfwise.db'}")
    try:
        with engine.connect() as conn:
            return conn.scalar(select(func.count()).select_from(model))
    finally:
        engine.dispose()


def _listings(tmp_path: Path, n: int) -> Path:
    f = tmp_path / "many.jsonl"
    f.write_text("".join(f'{{"id": "p{i}", "title": "Product {i}"}}\n' for i in range(n)))
    return f


def test_each_chunk_is_committed_so_a_failed_ingest_keeps_what_it_saved(home, tmp_path, monkeypatch):
    real = Catalog.upsert

    def upsert(self, listing, *, source=""):
        if listing.id == "p700":
            raise StoreError("the disk is full", fix="free some space")
        return real(self, listing, source=source)

    monkeypatch.setattr(Catalog, "upsert", upsert)
    result = runner.invoke(app, ["ingest", str(_listings(tmp_path, 1000))])
    assert result.exit_code == 1 and "error: the disk is full" in result.output
    assert "500 of 1000 rows were saved" in result.output and result.exception.__class__ is SystemExit
    assert _count(home) == 500


def test_a_locked_database_is_a_clear_error_not_a_traceback(home, tmp_path, monkeypatch):
    assert runner.invoke(app, ["init"]).exit_code == 0
    monkeypatch.setattr(dbmod, "BUSY_TIMEOUT_MS", 200)
    other = create_engine(f"sqlite:///{home / 'shelfwise.db'}")
    try:
        with other.connect() as conn:
            conn.exec_driver_sql("BEGIN IMMEDIATE")  # another writer holds the lock
            result = runner.invoke(app, ["ingest", str(_listings(tmp_path, 3))])
            conn.exec_driver_sql("ROLLBACK")
    finally:
        other.dispose()
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert "error: the database" in result.output and "locked" in result.output and "fix:" in result.output


@pytest.mark.parametrize(("body", "expected"), [("{not json", "not valid JSON"),
                                                ('[{"category_path":"A","attributes":[{"nam":"x"}]}]', "nam")])
def test_a_bad_schema_file_is_refused_before_any_listing_is_stored(home, tmp_path, body, expected):
    schemas = tmp_path / "s.json"
    schemas.write_text(body)
    result = runner.invoke(app, ["ingest", str(_listings(tmp_path, 3)), "--schemas", str(schemas)])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert "error:" in result.output and expected in result.output and "fix:" in result.output
    assert not (home / "shelfwise.db").exists() or _count(home) == 0


def test_schemas_and_listings_are_both_loaded(home, tmp_path):
    schemas = tmp_path / "s.json"
    schemas.write_text('[{"category_path": "A", "attributes": [{"name": "x"}]}]')
    result = runner.invoke(app, ["ingest", str(_listings(tmp_path, 3)), "--schemas", str(schemas)])
    assert result.exit_code == 0, result.output
    assert _count(home) == 3 and _count(home, CategorySchema) == 1


def test_duplicate_ids_are_a_warning_in_the_report(home, tmp_path):
    f = tmp_path / "dup.jsonl"
    f.write_text('{"id": "a", "title": "x"}\n{"id": "a", "title": "y"}\n{"id": "b", "title": "z"}\n')
    result = runner.invoke(app, ["ingest", str(f)])
    assert result.exit_code == 0, result.output
    assert "warning: 1 id appears more than once" in result.output and "a" in result.output


def test_a_non_utf8_file_is_refused(home, tmp_path):
    f = tmp_path / "latin1.csv"
    f.write_bytes("id,title\n1,Caf\u00e9\n".encode("latin-1"))
    result = runner.invoke(app, ["ingest", str(f)])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert "latin1.csv is not UTF-8 (byte 0xe9 at line 2)" in result.output and "re-save" in result.output


def test_an_unclosed_csv_quote_is_reported_and_the_later_rows_kept(home, tmp_path):
    f = tmp_path / "q.csv"
    f.write_text('id,title,description\n1,Tent,"unclosed quote\n2,Stove,ok\n3,Lamp,ok\n')
    result = runner.invoke(app, ["ingest", str(f)])
    assert "q.csv:2" in result.output and "2 added" in result.output and "1 rejected" in result.output


@pytest.mark.parametrize("env", [{"SHELFWISE_DATABASE_URL": "mysq://x"}, {"SHELFWISE_HOME": "FILE"}])
def test_a_bad_home_or_database_url_is_a_clear_error(tmp_path, monkeypatch, env):
    (tmp_path / "afile").write_text("")
    for key, value in env.items():
        monkeypatch.setenv(key, str(tmp_path / "afile") if value == "FILE" else value)
    result = runner.invoke(app, ["init"])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert "error:" in result.output and "fix:" in result.output


