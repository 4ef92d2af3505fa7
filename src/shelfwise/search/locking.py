"""An inter-process lock on the index directory, so several worker processes share one index safely.

Writers (upsert, sync, build, learn) hold it exclusively while they reload the newest index from disk, apply
their change and save; readers hold it shared while they load, so they never read a half-written save.
``fcntl.flock`` locks belong to an open file, so two services in one process exclude each other too; the
holder may re-enter (a writer's reload does not wait for itself).

``ReadWriteLock`` is the in-process counterpart for one loaded index: request threads read it while an
upsert or a catch-up with another worker's changes edits it in place, and a query must not see a row
appended to one array and not yet to the next.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import IndexStateError

try:
    import fcntl
except ImportError:  # not POSIX: one process per index is then the caller's job
    fcntl = None  # type: ignore[assignment]

__all__ = ["LOCK_FILE", "IndexLock", "ReadWriteLock", "ensure_directory"]

LOCK_FILE = ".lock"


def ensure_directory(directory: Path) -> None:
    """Create the index directory, or say what is in the way (a plain file, no permission)."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise IndexStateError(f"cannot use {directory} as the search index directory ({exc.strerror or exc})",
                              fix="move away whatever is at that path (or fix its permissions), then run "
                                  "`shelfwise index --rebuild`") from exc


class IndexLock:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._thread = threading.RLock()
        self._depth = 0
        self._fd: int | None = None

    @contextmanager
    def hold(self, *, shared: bool = False) -> Iterator[None]:
        """Hold the lock (exclusive unless ``shared``). Re-entrant: an inner ``hold`` keeps the outer mode,
        so never ask for exclusive inside shared."""
        with self._thread:
            if self._depth == 0:
                self._acquire(shared)
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                if self._depth == 0 and self._fd is not None:
                    os.close(self._fd)  # closing the file releases the flock
                    self._fd = None

    def _acquire(self, shared: bool) -> None:
        if fcntl is None:
            return
        if shared and not self.directory.is_dir():
            return  # nothing to read yet; the load that follows says so
        ensure_directory(self.directory)
        try:
            fd = os.open(self.directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            if shared:
                return  # a read-only index directory: nobody can be writing it
            raise IndexStateError(f"cannot open the index lock {self.directory / LOCK_FILE} ({exc.strerror})",
                                  fix="make the index directory writable by the server's user") from exc
        fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        self._fd = fd


class ReadWriteLock:
    """Many readers or one writer; a waiting writer holds off new readers, so a steady stream of queries
    cannot starve an update. Not re-entrant. A forked child starts with it free: the threads that held it
    in the parent do not exist there (a pre-forking server forks after loading the index)."""

    def __init__(self) -> None:
        self._reset()
        _ALL_RW_LOCKS.add(self)

    def _reset(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writing = False
        self._writers_waiting = 0

    @contextmanager
    def reading(self) -> Iterator[None]:
        with self._cond:
            while self._writing or self._writers_waiting:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                # floored: a child forked inside a read starts with the count reset, then leaves the read
                self._readers = max(0, self._readers - 1)
                if not self._readers:
                    self._cond.notify_all()

    @contextmanager
    def writing(self) -> Iterator[None]:
        with self._cond:
            self._writers_waiting += 1
            while self._writing or self._readers:
                self._cond.wait()
            self._writers_waiting -= 1
            self._writing = True
        try:
            yield
        finally:
            with self._cond:
                self._writing = False
                self._cond.notify_all()


_ALL_RW_LOCKS: weakref.WeakSet[ReadWriteLock] = weakref.WeakSet()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=lambda: [lock._reset() for lock in list(_ALL_RW_LOCKS)])
