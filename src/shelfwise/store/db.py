"""Engine, sessions and migrations. SQLite (WAL) by default, PostgreSQL by URL."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from ..errors import ConfigError, MigrationError, StoreError

__all__ = ["Database"]

_MIGRATIONS = Path(__file__).parent / "migrations"
BUSY_TIMEOUT_MS = 30_000  # how long a SQLite writer waits for another one before "database is locked"
_URL_FIX = ("set SHELFWISE_DATABASE_URL to sqlite:///PATH or postgresql+psycopg://USER:PASSWORD@HOST/DB "
            "(or unset it for the SQLite file in SHELFWISE_HOME)")


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
    cur = dbapi_conn.cursor()
    # WAL lets readers (the API, the console) run while a batch job writes.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_MS)}")
    cur.close()


class Database:
    """One database: ``migrate()`` once, then ``with db.session() as s: ...`` (commits on success)."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
            _make_parent(Path(url.removeprefix("sqlite:///")))
        kwargs: dict = {"echo": echo, "future": True}
        if url.startswith("postgresql"):
            kwargs.update(pool_pre_ping=True, pool_size=5, max_overflow=10)
        try:
            self.engine: Engine = create_engine(url, **kwargs)
        except ArgumentError as exc:  # NoSuchModuleError included: an unknown dialect or driver name
            raise ConfigError(f"cannot use the database URL {_mask(url)!r}: {exc}", fix=_URL_FIX) from None
        except ImportError as exc:
            raise ConfigError(f"the driver for {_mask(url)!r} is not installed ({exc.name or exc})",
                              fix=f"pip install it, or {_URL_FIX}") from None
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
        except OperationalError as exc:
            s.rollback()
            if _is_locked(exc):
                raise _locked_error() from exc
            raise
        except Exception:
            s.rollback()
            raise
        finally:
            s.close()

    @contextlib.contextmanager
    def write_session(self) -> Iterator[Session]:
        """``session()`` that takes SQLite's write lock before its first read. A plain session reads, then
        upgrades to a writer; if another process committed in between, SQLite refuses at once (no busy wait).
        Taking the lock up front makes concurrent writers queue for each other instead."""
        with self.session() as s:
            if self.dialect == "sqlite":
                s.connection().exec_driver_sql("BEGIN IMMEDIATE")
            yield s

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
            if _is_locked(exc):
                raise _locked_error() from exc
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


def _make_parent(db_file: Path) -> None:
    parent = db_file.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        # mkdir says "File exists" when a file stands where the directory should be: name the file
        blocker = next((p for p in (parent, *parent.parents) if p.exists() and not p.is_dir()), None)
        why = f"{blocker} is a file" if blocker else exc.strerror
        raise ConfigError(f"cannot create the database directory {parent}: {why}",
                          fix="set SHELFWISE_HOME to a writable directory (or SHELFWISE_DATABASE_URL to a database)"
                          ) from None


def _is_locked(exc: OperationalError) -> bool:
    return "database is locked" in str(exc.orig) or "database table is locked" in str(exc.orig)


def _locked_error() -> StoreError:
    return StoreError(f"the database is locked: another shelfwise process kept writing for over "
                      f"{BUSY_TIMEOUT_MS / 1000:g} s", fix="wait for it (an ingest, enrich or init) to finish, "
                      "then re-run this command; what was committed before stays")


def _mask(url: str) -> str:
    return re.sub(r"://([^:/@]*):[^@/]*@", r"://\1:****@", url)
