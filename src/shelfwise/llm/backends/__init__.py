"""Built-in backends, registered like plugins: each module is imported only when its name is used."""

from __future__ import annotations

import importlib

from ...errors import ConfigError, UnknownNameError
from ..base import Backend

__all__ = ["BUILTIN_BACKENDS", "backend_class"]

BUILTIN_BACKENDS: dict[str, str] = {
    "scripted": "shelfwise.llm.backends.scripted:ScriptedBackend",
    "local": "shelfwise.llm.backends.local:LocalBackend",
    "openai": "shelfwise.llm.backends.openai:OpenAIBackend",
    "anthropic": "shelfwise.llm.backends.anthropic:AnthropicBackend",
    "bedrock": "shelfwise.llm.backends.bedrock:BedrockBackend",
}

_EXTRA = {"local": "local", "anthropic": "anthropic", "bedrock": "bedrock"}


def backend_class(name: str) -> type[Backend]:
    try:
        target = BUILTIN_BACKENDS[name]
    except KeyError:
        raise UnknownNameError("backend", name, list(BUILTIN_BACKENDS)) from None
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        extra = _EXTRA.get(name, name)
        raise ConfigError(
            f"backend {name!r} needs a package that is not installed ({exc.name})",
            fix=f"pip install 'shelfwise[{extra}]'",
        ) from exc
    return getattr(module, attr)
