"""Shared fixtures: a fresh database per test on SQLite, and on PostgreSQL when a server is configured
(``SHELFWISE_TEST_POSTGRES_URL``; `.ci/run` starts one, and in CI its absence is a failure, not a skip)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from shelfwise.app import Shelfwise
from shelfwise.config import Settings
from shelfwise.store.db import Database

FIXTURES = Path(__file__).parent / "fixtures"
PG_URL = os.environ.get("SHELFWISE_TEST_POSTGRES_URL")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # Keep a developer's shelfwise.toml / env out of the tests.
    for key in list(os.environ):
        if key.startswith("SHELFWISE_") and key != "SHELFWISE_TEST_POSTGRES_URL":
            monkeypatch.delenv(key)
    empty = tmp_path / "empty-shelfwise.toml"
    empty.write_text("")
    monkeypatch.setenv("SHELFWISE_CONFIG", str(empty))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def _postgres_db() -> Iterator[Database]:
    if not PG_URL:
        if IN_CI:
            pytest.fail("CI must run the PostgreSQL tests: SHELFWISE_TEST_POSTGRES_URL is not set (.ci/run sets it)")
        pytest.skip("no PostgreSQL server configured (set SHELFWISE_TEST_POSTGRES_URL)")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in PG_URL else "?"
    db = Database(f"{PG_URL}{sep}options=-csearch_path%3D{schema}")
    try:
        yield db
    finally:
        db.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A migrated database, once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        db = Database(f"sqlite:///{tmp_path / 'test.db'}")
        db.migrate()
        yield db
        db.dispose()
    else:
        for db in _postgres_db():
            db.migrate()
            yield db


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    """A migrated SQLite database (for tests that are not about the database itself)."""
    db = Database(f"sqlite:///{tmp_path / 'test.db'}")
    db.migrate()
    yield db
    db.dispose()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home")


@pytest.fixture
def sw(settings: Settings) -> Iterator[Shelfwise]:
    app = Shelfwise.open(settings)
    yield app
    app.close()
