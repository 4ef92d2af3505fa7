"""Scale-out: shards run on the local executor and, for real, on a local Ray cluster, all writing to one store."""

from __future__ import annotations

import os
import sys

import pytest

from shelfwise.app import Shelfwise
from shelfwise.config import EmbedderConfig, Settings
from shelfwise.errors import ConfigError, InputError
from shelfwise.scale import run_sharded, split
from shelfwise.store import Catalog, Listing


def ingest_shard(sw: Shelfwise, ids: list[str]) -> tuple[int, int]:
    with sw.db.session() as s:
        for pid in ids:
            Catalog(s).upsert(Listing(id=pid, title=f"Camping item {pid}", category_path="Camping"), source="shard")
    return os.getpid(), len(ids)


def _products(sw: Shelfwise) -> list[str]:
    with sw.db.session() as s:
        return sorted(p.id for p in Catalog(s).products(limit=1000))


def test_split_makes_near_equal_contiguous_shards():
    assert split(list(range(7)), 3) == [[0, 1, 2], [3, 4], [5, 6]]
    assert split([1, 2], 5) == [[1], [2]]
    assert split([], 3) == []
    with pytest.raises(InputError, match="fix:"):
        split([1], 0)


def test_local_executor_runs_every_shard_on_the_given_app(tmp_path):
    with Shelfwise.open(Settings(home=tmp_path, embedder=EmbedderConfig(backend="hashing"), search_embedder=EmbedderConfig(backend="hashing"))) as sw:
        out = run_sharded(ingest_shard, split([f"p{i}" for i in range(5)], 2), sw=sw)
        assert [n for _pid, n in out] == [3, 2] and {pid for pid, _ in out} == {os.getpid()}
        assert _products(sw) == [f"p{i}" for i in range(5)]
        with pytest.raises(ConfigError, match="local, ray"):
            run_sharded(ingest_shard, [["x"]], sw=sw, executor="spark")


@pytest.mark.slow
def test_ray_executor_writes_from_worker_processes_into_the_shared_store(tmp_path):
    ray = pytest.importorskip("ray")
    # The task lives in this test module, which Ray workers cannot import: ship it by value.
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    settings = Settings(home=tmp_path, embedder=EmbedderConfig(backend="hashing"), search_embedder=EmbedderConfig(backend="hashing"))
    with Shelfwise.open(settings) as sw:  # migrate once, before the workers open the same SQLite file
        pass
    ids = [f"p{i:02d}" for i in range(12)]
    out = run_sharded(ingest_shard, split(ids, 3), settings=settings, executor="ray", workers=2)
    assert [n for _pid, n in out] == [4, 4, 4]
    assert os.getpid() not in {pid for pid, _ in out}
    with Shelfwise.open(settings) as sw:
        assert _products(sw) == ids
