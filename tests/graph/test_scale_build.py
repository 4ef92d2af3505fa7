"""Graph generation over shards (``BuildConfig(workers=N)``): same pairs done, one merged report, resumable."""

from __future__ import annotations

from sqlalchemy import func, select

from shelfwise.graph import BuildConfig, CascadeConfig, build_graph, catalog_products
from shelfwise.graph.models import GraphCandidate

from .test_generate_cascade import _pairs


def test_sharded_generation_merges_shard_reports_and_resumes(gsw, scripted, generation):
    with gsw.db.session() as s:
        products = catalog_products(s)
    scripted.enqueue(generation(("used_for_event", "family camping trip")),
                     generation(("used_for_event", "winter camping")),
                     generation(("x_want", "drink coffee at home")))
    cfg = BuildConfig(cascade=CascadeConfig(stages=("completeness",)), workers=2)
    first = build_graph(gsw, _pairs(), products, cfg)
    assert first.generation["pairs_done"] == 3 and first.generation["candidates"] == 3
    assert len(scripted.requests) == 3
    again = build_graph(gsw, _pairs(), products, cfg)       # every shard finds its pairs done
    assert again.generation["pairs_skipped"] == 3 and len(scripted.requests) == 3
    with gsw.db.session() as s:
        assert s.scalar(select(func.count(GraphCandidate.id))) == 3


def test_build_config_rejects_an_unknown_executor():
    import pytest
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        BuildConfig(executor="spark")
