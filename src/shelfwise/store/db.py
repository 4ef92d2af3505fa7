"""Engine, sessions and migrations. SQLite (WAL) by default, PostgreSQL by URL."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from ..errors import MigrationError, StoreError

__all__ = ["Database"]

_MIGRATIONS = Path(__file__).parent / "migrations"


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
    cur = dbapi_conn.cursor()
    # WAL lets readers (the API, the console) run while a batch job writes.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


class Database:
    """One database: ``migrate()`` once, then ``with db.session() as s: ...`` (commits on success)."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        kwargs: dict = {"echo": echo, "future": True}
        if url.startswith("postgresql"):
            kwargs.update(pool_pre_ping=True, pool_size=5, max_overflow=10)
        self.engine: Engine = create_engine(url, **kwargs)
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        s = self._sessions()
        try:
            yield s
            s.commit()
        except Exception:
            s.rollback()
            raise
        finally:
            s.close()

    def _alembic_config(self):  # type: ignore[no-untyped-def]
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(_MIGRATIONS))
        cfg.set_main_option("sqlalchemy.url", self.url.replace("%", "%%"))
        cfg.attributes["engine"] = self.engine
        return cfg

    def migrate(self, revision: str = "heads") -> None:
        """Bring the schema to the newest revision of every branch (idempotent)."""
        from alembic import command

        try:
            command.upgrade(self._alembic_config(), revision)
        except OperationalError as exc:
            raise StoreError(
                f"cannot reach the database at {self.engine.url.render_as_string(hide_password=True)}: {exc.orig}",
                fix="check SHELFWISE_DATABASE_URL and that the server is running",
            ) from exc

    def current_revisions(self) -> set[str]:
        from alembic.runtime.migration import MigrationContext

        with self.engine.connect() as conn:
            return set(MigrationContext.configure(conn).get_current_heads())

    def head_revisions(self) -> set[str]:
        from alembic.script import ScriptDirectory

        return set(ScriptDirectory.from_config(self._alembic_config()).get_heads())

    def applied_revisions(self) -> set[str]:
        """Every revision the database has reached. Alembic records only the tips of applied branches, so a
        shared base (``core``) that domain branches depend on is found by walking down from them."""
        from alembic.script import ScriptDirectory

        current = self.current_revisions()
        if not current:
            return set()
        script = ScriptDirectory.from_config(self._alembic_config())
        return {r.revision for r in script.iterate_revisions(list(current), "base")}

    def pending_revisions(self) -> set[str]:
        return self.head_revisions() - self.applied_revisions()

    def check_schema(self) -> None:
        """Raise MigrationError unless the database is at the code's head revisions."""
        if not inspect(self.engine).has_table("alembic_version"):
            raise MigrationError("the database has no shelfwise schema", fix="run `shelfwise init`")
        pending = self.pending_revisions()
        if pending:
            raise MigrationError(
                f"database schema is at {sorted(self.current_revisions())}, the code also expects {sorted(pending)}",
                fix="run `shelfwise init` (it applies pending migrations)",
            )

    def dispose(self) -> None:
        self.engine.dispose()
