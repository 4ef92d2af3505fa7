"""Fixtures for the knowledge-base tests: a KnowledgeBase on a migrated database with the hashing
embedder (a deterministic test double), and a memory-manager LLM on the scripted test double."""

from __future__ import annotations

import json

import pytest

from shelfwise.config import RoleConfig
from shelfwise.enrich.kb import KnowledgeBase
from shelfwise.llm import LLM
from shelfwise.llm.backends.scripted import ScriptedBackend
from shelfwise.llm.embed import HashingEmbedder


@pytest.fixture
def embedder():
    return HashingEmbedder(dim=256)


def _scripted_llm(*responses, role="memory.manager"):
    backend = ScriptedBackend(config=RoleConfig(backend="scripted", model="scripted", max_retries=0))
    backend.enqueue(*[r if isinstance(r, str) else json.dumps(r) for r in responses])
    return LLM(role, backend, sleep=lambda s: None), backend


@pytest.fixture
def session(any_db):
    with any_db.session() as s:
        yield s


@pytest.fixture
def kb(session, embedder):
    return KnowledgeBase(session, embedder=embedder)


@pytest.fixture
def scripted_llm():
    """Factory: ``llm, backend = scripted_llm(response, ...)`` (dicts are sent as JSON)."""
    return _scripted_llm
