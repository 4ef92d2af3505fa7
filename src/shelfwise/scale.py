"""Scale-out: the same batch pipeline code over shards of work, in this process or on Ray.

    reports = run_sharded(enrich_shard, shards, settings=sw.settings, executor="ray", workers=4)

``task(sw, shard)`` must be a module-level function (Ray ships it by reference) that opens nothing itself:
each Ray worker opens its own ``Shelfwise`` from the same settings, so every shard writes to the one shared
store (PostgreSQL in production; the SQLite file works for a single machine thanks to WAL and a busy
timeout). Shards are the unit of retry and resumption — a task that dies leaves its batch marked running in
the store, and the next run finishes it. With ``executor="local"`` the shards run one after another in this
process, on ``sw`` if given (so test doubles set on it are used).

Ray is an optional dependency (``pip install 'shelfwise[ray]'``). ``ray_address`` joins an existing cluster
(``"auto"`` or ``ray://host:10001``); without it a local Ray with ``workers`` CPUs is started and stopped.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

from .errors import ConfigError, InputError

if TYPE_CHECKING:  # pragma: no cover
    from .app import Shelfwise
    from .config import Settings

__all__ = ["EXECUTORS", "run_sharded", "split"]

S = TypeVar("S")
R = TypeVar("R")
EXECUTORS = ("local", "ray")


def split(items: Sequence[S], shards: int) -> list[list[S]]:
    """``items`` in ``shards`` contiguous, nearly equal parts (none empty)."""
    if shards < 1:
        raise InputError(f"{shards} shards", fix="use at least one shard (--workers 1)")
    n = min(shards, len(items))
    if n == 0:
        return []
    size, extra = divmod(len(items), n)
    out, start = [], 0
    for i in range(n):
        end = start + size + (1 if i < extra else 0)
        out.append(list(items[start:end]))
        start = end
    return out


def _run_shard(settings: Settings, task: Callable[[Shelfwise, S], R], shard: S) -> R:
    from .app import Shelfwise

    # Each worker process is one of many on the machine: keep native thread pools from oversubscribing it.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    with Shelfwise.open(settings) as sw:
        return task(sw, shard)


def run_sharded(task: Callable[[Shelfwise, S], R], shards: Sequence[S], *, settings: Settings | None = None,
                sw: Shelfwise | None = None, executor: str = "local", workers: int = 2,
                cpus_per_task: float = 1.0, ray_address: str | None = None) -> list[R]:
    """Run ``task`` on every shard; results in shard order. Errors in a shard propagate (after the others)."""
    if executor not in EXECUTORS:
        raise ConfigError(f"unknown executor {executor!r}", fix=f"use one of: {', '.join(EXECUTORS)}")
    if executor == "local":
        if sw is not None:
            return [task(sw, shard) for shard in shards]
        if settings is None:
            raise InputError("run_sharded needs settings or an open Shelfwise", fix="pass settings=sw.settings")
        return [_run_shard(settings, task, shard) for shard in shards]

    settings = settings or (sw.settings if sw is not None else None)
    if settings is None:
        raise InputError("the ray executor needs the settings to open the store in each worker",
                         fix="pass settings=sw.settings")
    try:
        import ray
    except ImportError as exc:
        raise ConfigError("the ray executor needs Ray installed", fix="pip install 'shelfwise[ray]'") from exc
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=ray_address, num_cpus=None if ray_address else workers, include_dashboard=False,
                 log_to_driver=False, configure_logging=False, ignore_reinit_error=True)
    try:
        remote = ray.remote(_run_shard).options(num_cpus=cpus_per_task, max_retries=0)
        refs = [remote.remote(settings, task, shard) for shard in shards]
        ray.wait(refs, num_returns=len(refs))  # let every shard finish before an error surfaces
        return ray.get(refs)
    finally:
        if started_here:
            ray.shutdown()
