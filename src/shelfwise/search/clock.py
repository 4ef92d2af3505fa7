"""The search domain's clock: wall time, or simulated time for offline learning loops.

Click memory decays with the age of each click and the bandit's context has a daypart, so a simulation that
read the wall clock gave different memory scores and rankings in every run (they depend on how fast the
machine happened to be). Under ``simulated_time`` the clock starts at a fixed instant and advances by a
fixed tick on every read, so the same simulation reads the same times in any process.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

__all__ = ["now", "simulated_time", "utcnow"]

_source: Callable[[], datetime] | None = None  # None: the wall clock


def now() -> datetime:
    """Timezone-aware UTC time."""
    return _source() if _source is not None else datetime.now(UTC)


def utcnow() -> datetime:
    """Naive UTC time, as the store's timestamp columns keep it."""
    return now().replace(tzinfo=None)


@contextmanager
def simulated_time(start: datetime, tick: timedelta = timedelta(milliseconds=100)) -> Iterator[None]:
    """Within the block, the first read returns ``start`` (UTC) and every further read ``tick`` later."""
    global _source
    if start.tzinfo is None:
        start = start.replace(tzinfo=UTC)
    reads = 0

    def simulated() -> datetime:
        nonlocal reads
        reads += 1
        return start + (reads - 1) * tick

    previous, _source = _source, simulated
    try:
        yield
    finally:
        _source = previous
