"""Fixtures for the embedded-model tests. Assembled GGUF files go to one shared cache (the repository's
git-ignored ``.shelfwise/models``, or ``SW_TEST_MODEL_CACHE``), so a test session assembles each model once
instead of copying 1.6 GB into every temporary directory."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def model_cache() -> Path:
    return Path(os.environ.get("SW_TEST_MODEL_CACHE", REPO / ".shelfwise" / "models"))


@pytest.fixture(scope="session")
def local_05b(model_cache: Path) -> Iterator:
    """The 0.5B worker model, loaded once per session (2 threads, as in production)."""
    pytest.importorskip("llama_cpp")
    from shelfwise.config import RoleConfig
    from shelfwise.llm.backends.local import LocalBackend

    backend = LocalBackend("qwen2.5-coder-0.5b", RoleConfig(max_tokens=128, max_retries=0, context_tokens=2048),
                           threads=2, cache_dir=model_cache)
    yield backend
    backend.close()
