"""Fixtures for the enrichment loop: an app whose model roles are served by ScriptedBackend test doubles
(see ``doubles.py``) and a hashing embedder."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from shelfwise.app import Shelfwise
from shelfwise.config import EmbedderConfig, Settings
from shelfwise.store import Catalog

from .doubles import (  # noqa: F401  (re-exported: tests import them from here)
    LISTINGS,
    asked,
    evaluator_double,
    generator_double,
    listing_title,
    make_app,
    manager_double,
    supervisor_double,
    user_text,
    verdict,
)


@pytest.fixture
def enrich_settings(tmp_path) -> Settings:  # type: ignore[no-untyped-def]
    return Settings(home=tmp_path / "home", embedder=EmbedderConfig(backend="hashing"), llm_cache=False)


@pytest.fixture
def scripted_sw(enrich_settings) -> Iterator[Shelfwise]:  # type: ignore[no-untyped-def]
    sw = make_app(enrich_settings)
    with sw.db.session() as s:
        Catalog(s).ingest([(i, li) for i, li in enumerate(LISTINGS)], source="test")
    yield sw
    sw.close()
