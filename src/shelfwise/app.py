"""The library entry point: ``Shelfwise`` wires settings, the database, the LLM roles and the embedder.

    >>> sw = Shelfwise.open()           # settings from env / shelfwise.toml; migrates the database
    >>> with sw.db.session() as s: ...
    >>> llm = sw.llm("worker.generator")
"""

from __future__ import annotations

from functools import cached_property
from typing import Any, Self

from .config import Settings, get_settings
from .contracts import Providers
from .llm.client import LLM
from .llm.registry import LLMRegistry
from .store.accounting import DbCache, DbRecorder
from .store.db import Database

__all__ = ["Shelfwise"]


class Shelfwise:
    def __init__(self, settings: Settings, db: Database) -> None:
        self.settings = settings
        self.db = db
        self.recorder = DbRecorder(db)
        self.cache = DbCache(db)
        self.llms = LLMRegistry(settings, recorder=self.recorder, cache=self.cache)
        self.providers = Providers()

    @classmethod
    def open(cls, settings: Settings | None = None, *, migrate: bool = True, **overrides: Any) -> Shelfwise:
        settings = settings or get_settings(**overrides)
        db = Database(settings.effective_database_url)
        if migrate:
            db.migrate()
        else:
            db.check_schema()
        return cls(settings, db)

    def llm(self, role: str) -> LLM:
        return self.llms.for_role(role)

    @cached_property
    def embedder(self):  # type: ignore[no-untyped-def]
        from .llm.embed import make_embedder

        return make_embedder(self.settings.embedder)

    @cached_property
    def search_embedder(self):  # type: ignore[no-untyped-def]
        from .llm.embed import make_embedder

        if self.settings.search_embedder == self.settings.embedder:
            return self.embedder  # one model in memory when both roles name the same one
        return make_embedder(self.settings.search_embedder)

    @cached_property
    def cross_encoder(self):  # type: ignore[no-untyped-def]
        from .llm.onnx_models import CrossEncoder

        cfg = self.settings.search_reranker  # the model loads on its first pair, not here
        return CrossEncoder(cfg.model, threads=cfg.threads)

    def close(self) -> None:
        self.recorder.flush()
        self.cache.flush()
        self.llms.close()
        self.db.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
