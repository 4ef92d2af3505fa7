"""One settings object, from (highest first) init kwargs, environment, a TOML file, defaults.

Environment variables use the ``SHELFWISE_`` prefix and ``__`` for nesting, e.g.
``SHELFWISE_DATABASE_URL=postgresql+psycopg://...`` or
``SHELFWISE_ROLES__SUPERVISOR__MODEL=qwen2.5-coder-1.5b``. The TOML file is ``shelfwise.toml`` in the
working directory, or the path in ``SHELFWISE_CONFIG``.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from .errors import ConfigError, UnknownNameError

__all__ = ["DEFAULT_ROLES", "MAX_RERANK_DEPTH", "ApiKeyConfig", "EmbedderConfig", "RerankerConfig", "RoleConfig", "Settings",
           "get_settings", "unknown_role"]

BackendName = Literal["local", "openai", "anthropic", "bedrock", "scripted"]


class RoleConfig(BaseModel):
    """Which backend and model serve one role, and how calls to it behave."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    backend: BackendName = "local"
    model: str = "qwen2.5-coder-0.5b"
    base_url: str | None = None
    api_key: SecretStr | None = None
    region: str | None = None
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    max_tokens: int = Field(512, ge=1, le=32768)
    timeout_s: float = Field(120.0, gt=0)
    max_retries: int = Field(2, ge=0, le=10)
    concurrency: int = Field(1, ge=1, le=256)
    # USD per million tokens; 0 for the embedded models (they cost seconds, which are recorded too).
    price_in_per_mtok: float = Field(0.0, ge=0)
    price_out_per_mtok: float = Field(0.0, ge=0)
    context_tokens: int = Field(4096, ge=256)


class ApiKeyConfig(BaseModel):
    """An HTTP API key and the role it grants (reader < writer < expert < admin)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    key: SecretStr
    role: Literal["reader", "writer", "expert", "admin"] = "reader"


class EmbedderConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    backend: Literal["local", "openai", "hashing"] = "local"
    model: str = "all-minilm-l6-v2"
    base_url: str | None = None
    api_key: SecretStr | None = None
    batch_size: int = Field(64, ge=1)


MAX_RERANK_DEPTH = 100  # the most results a request may have the cross-encoder re-score (~1 s of CPU)


class RerankerConfig(BaseModel):
    """Search's optional second stage: a cross-encoder re-scores the ranker's top ``depth`` results.

    Off by default (``depth`` 0) because it does not fit the serving budget on small machines: one pair costs
    ~10 ms of CPU (int8 ms-marco-MiniLM-L-12, one core), so depth 20 adds ~0.2 s a query. On the ESCI subset it
    lifted NDCG@10 by about 0.02 (``docs/benchmarks.md``); depth 20 and weight 2 were chosen on dev. With
    ``mode = "background"`` no request waits for it: repeated queries get it from the score cache."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str = "ms-marco-minilm-l12-v2"
    depth: int = Field(0, ge=0, le=MAX_RERANK_DEPTH, description="re-score this many top results per query; 0 = off")
    weight: float = Field(2.0, ge=0.0, description="cross-encoder weight against the ranker (both standardised)")
    threads: int = Field(1, ge=1, le=64, description="onnxruntime threads for one query's pairs")
    cache_size: int = Field(50_000, ge=0, description="(query, product text) scores kept for repeated queries")
    skip_clicked: bool = Field(True, description="queries with observed clicks keep the click-trained ranking "
                                                 "(on simulated online learning the fixed blend cost 0.03 NDCG there)")
    mode: Literal["sync", "background"] = Field(
        "sync", description="sync: score inside the request; background: re-rank only queries whose scores are "
                            "cached and score the others on a thread, in quiet moments (no request waits)")

    @model_validator(mode="after")
    def _background_needs_the_cache(self) -> RerankerConfig:
        if self.mode == "background" and self.cache_size == 0:
            raise ValueError("search_reranker.mode 'background' serves from the score cache: set cache_size > 0")
        return self


DEFAULT_ROLES: dict[str, RoleConfig] = {
    "worker.generator": RoleConfig(model="qwen2.5-coder-0.5b", max_tokens=384),
    # A second, different generator: the worker panel votes, and two models clash where one would just err.
    "worker.generator.alt": RoleConfig(model="qwen2.5-coder-1.5b", max_tokens=384),
    # The evaluator asks one question per call (a dozen tokens out): the 1.5B costs 1.5 s a question and
    # flags 2 % of right values; the 0.5B, 0.9 s and 33 % (benchmarks/enrich_evaluator.py).
    "worker.evaluator": RoleConfig(model="qwen2.5-coder-1.5b", max_tokens=64),
    "supervisor": RoleConfig(model="qwen2.5-coder-1.5b", max_tokens=512),
    "graph.generator": RoleConfig(model="qwen2.5-coder-1.5b", max_tokens=320),
    "memory.manager": RoleConfig(model="qwen2.5-coder-0.5b", max_tokens=256),
}


def _toml_path() -> Path:
    return Path(os.environ.get("SHELFWISE_CONFIG", "shelfwise.toml"))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="SHELFWISE_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    home: Path = Field(Path(".shelfwise"), description="where the default database, indexes and caches live")
    database_url: str | None = Field(None, description="SQLAlchemy URL; default is a SQLite file in home")
    data_dir: Path = Field(Path("../shared/data"), description="public benchmark data (read-only)")
    roles: dict[str, RoleConfig] = Field(default_factory=lambda: dict(DEFAULT_ROLES))
    embedder: EmbedderConfig = Field(default_factory=EmbedderConfig,
                                     description="sentence vectors for the knowledge base and the intent graph")
    search_embedder: EmbedderConfig = Field(
        default_factory=lambda: EmbedderConfig(model="bge-small-en-v1.5"),
        description="the bi-encoder of dense search (products and queries); a retrieval model, separate from "
                    "`embedder` because the knowledge base's similarity thresholds are calibrated on that one")
    search_reranker: RerankerConfig = Field(default_factory=RerankerConfig,
                                            description="the cross-encoder second stage of search (off by default)")
    llm_threads: int = Field(2, ge=1, description="CPU threads for the embedded llama.cpp models")
    llm_cache: bool = Field(True, description="cache model calls by prompt hash in the database")
    llm_prompt_cache_mb: int = Field(512, ge=0, description="RAM per embedded model for llama.cpp states keyed "
                                     "by prompt prefix (0: off): roles sharing one model resume their own prompt "
                                     "prefix; ~20 % faster enrichment for ~1.2 GB more peak memory")
    max_listing_tokens: int = Field(1200, ge=64, description="listing text is cut to this budget")
    api_keys: list[ApiKeyConfig] = Field(default_factory=list, description="HTTP API keys with roles")
    log_json: bool = False

    @field_validator("roles", mode="before")
    @classmethod
    def _merge_roles(cls, value: Any) -> Any:
        # A TOML file or env var that sets one role must not erase the other defaults. The code asks for
        # the roles of DEFAULT_ROLES only, so any other name is a typo that would leave the intended role on
        # its default silently ([roles.supervisr], or SHELFWISE_ROLES__GRAPH_GENERATOR__... for
        # "graph.generator"); tests and notebooks serve extra roles with LLMRegistry.set_backend instead.
        if isinstance(value, dict):
            merged: dict[str, Any] = {k: v.model_dump() for k, v in DEFAULT_ROLES.items()}
            for name, cfg in value.items():
                if name not in DEFAULT_ROLES:
                    raise unknown_role(str(name), list(DEFAULT_ROLES))
                base = merged[name]
                patch = cfg.model_dump(exclude_unset=True) if isinstance(cfg, RoleConfig) else dict(cfg)
                merged[name] = {**base, **patch}
            return merged
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        path = _toml_path()
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if "SHELFWISE_CONFIG" in os.environ and (not path.exists() or path.is_dir()):
            # Named on purpose: running on the defaults instead would, e.g., point a production server at a
            # fresh SQLite file.
            raise ConfigError(f"SHELFWISE_CONFIG names {path}, which is not a file (missing, or a directory)",
                              fix="fix the path, or unset SHELFWISE_CONFIG to use ./shelfwise.toml if present")
        if path.exists():
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.home / 'shelfwise.db').as_posix()}"

    def role(self, name: str) -> RoleConfig:
        try:
            return self.roles[name]
        except KeyError:
            raise unknown_role(name, list(self.roles)) from None

    def masked(self) -> dict[str, Any]:
        """The effective settings as plain data with every secret masked."""
        data = self.model_dump(mode="json")
        data["database_url"] = _mask_url(self.effective_database_url)
        for role in data["roles"].values():
            if role.get("api_key"):
                role["api_key"] = "****"
        if data["embedder"].get("api_key"):
            data["embedder"]["api_key"] = "****"
        return data


def unknown_role(name: str, known: list[str]) -> UnknownNameError:
    """``UnknownNameError`` for a role, its fix extended with the closest known role and how that role is
    spelt in shelfwise.toml and in an environment variable (a dotted name: the usual slip is ``_``)."""
    err = UnknownNameError("role", name, known)
    # UnknownNameError takes no hint, so the closest name is added to its fix (and message) here
    close = difflib.get_close_matches(name.lower().replace("_", "."), known, n=1, cutoff=0.6)
    if close:
        role = close[0]
        env = f"SHELFWISE_ROLES__{role.upper()}__<FIELD>"
        if "." in role:
            env += " (pass it with `env`: a shell cannot export a dotted name)"
        err.fix = (f"did you mean {role!r}? In shelfwise.toml write [roles.{_toml_key(role)}], in the "
                   f"environment {env}; {err.fix}")
        err.args = (f"unknown role {name!r} — fix: {err.fix}",)
    return err


def _toml_key(role: str) -> str:
    return f'"{role}"' if "." in role else role


def _mask_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - a URL SQLAlchemy cannot parse is reported later, unmasked here
        return url


def get_settings(**overrides: Any) -> Settings:
    try:
        return Settings(**overrides)
    except ConfigError:
        raise
    except Exception as exc:  # pydantic.ValidationError or a TOML syntax error
        raise ConfigError(
            f"invalid settings: {exc}",
            fix=f"check {_toml_path()} and the SHELFWISE_* environment variables",
        ) from exc
