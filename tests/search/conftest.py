"""Search fixtures: a small catalog in a fresh app with the hashing embedder (a test double)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from shelfwise.app import Shelfwise

from .search_fixtures import ingest, make_app


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Shelfwise]:
    sw = make_app(tmp_path)
    ingest(sw)
    yield sw
    sw.close()


@pytest.fixture
def service(app: Shelfwise):
    from shelfwise.search import SearchService

    svc = SearchService(app)
    svc.build_index()
    return svc
