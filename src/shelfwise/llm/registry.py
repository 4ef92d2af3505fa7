"""Roles → backends. One backend instance per (backend, model, endpoint), shared by the roles that use it,
so two roles on the same embedded model load it once."""

from __future__ import annotations

import threading
from typing import Any

from ..config import RoleConfig, Settings, unknown_role
from .backends import backend_class
from .base import Backend
from .client import LLM, Recorder, ResponseCache

__all__ = ["LLMRegistry"]


class LLMRegistry:
    def __init__(
        self,
        settings: Settings,
        *,
        recorder: Recorder | None = None,
        cache: ResponseCache | None = None,
        overrides: dict[str, Backend] | None = None,
    ) -> None:
        self.settings = settings
        self.recorder = recorder
        self.cache = cache if settings.llm_cache else None
        self._overrides = dict(overrides or {})
        self._backends: dict[tuple[Any, ...], Backend] = {}
        self._lock = threading.Lock()

    @property
    def roles(self) -> list[str]:
        return sorted(set(self.settings.roles) | set(self._overrides))

    def set_backend(self, role: str, backend: Backend) -> None:
        """Serve ``role`` with an explicit backend instance (tests, notebooks)."""
        self._overrides[role] = backend

    def backend_for(self, role: str) -> Backend:
        if role in self._overrides:
            return self._overrides[role]
        if role not in self.settings.roles:
            raise unknown_role(role, self.roles)
        cfg = self.settings.roles[role]
        key = (cfg.backend, cfg.model, cfg.base_url, cfg.region)
        with self._lock:
            if key not in self._backends:
                cls = backend_class(cfg.backend)
                self._backends[key] = cls(cfg.model, cfg, **self._backend_options(cfg))
            return self._backends[key]

    def _backend_options(self, cfg: RoleConfig) -> dict[str, Any]:
        if cfg.backend == "local":
            return {"threads": self.settings.llm_threads, "cache_dir": self.settings.home / "models",
                    "prompt_cache_mb": self.settings.llm_prompt_cache_mb}
        return {}

    def for_role(self, role: str) -> LLM:
        backend = self.backend_for(role)
        cfg = self.settings.roles.get(role, backend.config)
        return LLM(role, backend, cfg, recorder=self.recorder, cache=self.cache)

    def close(self) -> None:
        for backend in self._backends.values():
            backend.close()
        self._backends.clear()
