"""Anthropic's Messages API through the official ``anthropic`` SDK.

Structured output uses a single forced tool (``tool_choice={"type": "tool", "name": ...}``) whose
``input_schema`` is the requested JSON schema: the model has to answer by "calling" it, and the tool input
(already parsed JSON on the wire) is returned as JSON text for the client to validate like any other.
The system prompt goes in the separate ``system`` field. The SDK's own retries are off; the client retries.
Sampling temperature is not sent: this SDK generation no longer exposes it (the model's default is used).
"""

from __future__ import annotations

import asyncio
import json
import os
import weakref
from typing import Any

import anthropic

from ...config import RoleConfig
from ...errors import ConfigError, LLMError
from ..base import Backend, ChatRequest, RawResponse
from ._remote import (
    TOOL_DESCRIPTION,
    TOOL_NAME,
    merge_turns,
    overloaded,
    rejected,
    split_system,
    timed_out,
    tool_schema,
    unavailable,
    unwrap_tool_input,
)

__all__ = ["AnthropicBackend"]


class AnthropicBackend(Backend):
    """``roles.<role>`` with ``backend = "anthropic"``: ``model`` (e.g. ``claude-sonnet-4-5``), ``api_key``
    (default ``ANTHROPIC_API_KEY``), ``base_url`` (a proxy or a test server), ``timeout_s``."""

    name = "anthropic"
    constrained_json = False  # tool input follows the schema closely but is not grammar-constrained
    native_async = True
    retryable = ()  # 429 / 5xx / 529 become BackendUnavailableError, which the client retries

    def __init__(self, model: str, config: RoleConfig, **options: Any) -> None:
        super().__init__(model, config, **options)
        key = (config.api_key.get_secret_value() if config.api_key else None) or os.environ.get(
            "ANTHROPIC_API_KEY")
        if not key and not config.base_url:
            raise ConfigError(
                f"anthropic model {model!r} has no API key",
                fix="set roles.<role>.api_key (env SHELFWISE_ROLES__<ROLE>__API_KEY) or ANTHROPIC_API_KEY",
            )
        self._client_kwargs: dict[str, Any] = {
            "api_key": key or "not-needed",  # a keyless proxy still gets a syntactically valid header
            "base_url": config.base_url,
            "timeout": config.timeout_s,
            "max_retries": 0,
        }
        self._client = anthropic.Anthropic(**self._client_kwargs)
        self._aclients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, anthropic.AsyncAnthropic] = (
            weakref.WeakKeyDictionary()
        )

    @property
    def url(self) -> str:
        return str(self._client.base_url).rstrip("/")

    def execute(self, request: ChatRequest) -> RawResponse:
        try:
            response = self._client.messages.create(**self._kwargs(request))
        except anthropic.APIError as exc:
            raise self._map_error(exc, request) from exc
        return self._parse(response, request)

    async def aexecute(self, request: ChatRequest) -> RawResponse:
        loop = asyncio.get_running_loop()
        client = self._aclients.get(loop)
        if client is None:  # httpx async pools belong to one event loop
            client = self._aclients[loop] = anthropic.AsyncAnthropic(**self._client_kwargs)
        try:
            response = await client.messages.create(**self._kwargs(request))
        except anthropic.APIError as exc:
            raise self._map_error(exc, request) from exc
        return self._parse(response, request)

    def close(self) -> None:
        self._client.close()
        self._aclients.clear()

    # -- internals ----------------------------------------------------------------------------------
    def _kwargs(self, request: ChatRequest) -> dict[str, Any]:
        system, rest = split_system(request.messages)
        kwargs: dict[str, Any] = {
            "model": self.model,
            "max_tokens": request.max_tokens,
            "messages": [{"role": role, "content": text} for role, text in merge_turns(rest)],
            "timeout": request.timeout_s,
        }
        if system:
            kwargs["system"] = system
        if request.stop:
            kwargs["stop_sequences"] = list(request.stop)
        if request.json_schema is not None:
            kwargs["tools"] = [{"name": TOOL_NAME, "description": TOOL_DESCRIPTION,
                                "input_schema": tool_schema(request.json_schema)}]
            kwargs["tool_choice"] = {"type": "tool", "name": TOOL_NAME}
        return kwargs

    def _map_error(self, exc: anthropic.APIError, request: ChatRequest) -> LLMError:
        url = self.url
        if isinstance(exc, anthropic.APITimeoutError):
            return timed_out(self.name, url, self.model, request.timeout_s)
        if isinstance(exc, anthropic.APIConnectionError):
            return unavailable(self.name, url, self.model, exc.__cause__ or exc)
        if isinstance(exc, anthropic.APIStatusError):
            status = exc.status_code
            if status in (408, 429) or status >= 500:  # 529 = overloaded
                return overloaded(self.name, url, self.model, status, exc.message)
            return rejected(self.name, url, self.model, status, exc.message)
        return LLMError(f"{self.name} endpoint {url} (model {self.model!r}) sent an unreadable answer: {exc}",
                        fix="check that base_url points at the Anthropic Messages API")

    def _parse(self, response: Any, request: ChatRequest) -> RawResponse:
        texts, tool_input = [], None
        for block in response.content or []:
            if block.type == "tool_use" and block.name == TOOL_NAME:
                tool_input = block.input
            elif block.type == "text":
                texts.append(block.text)
        if tool_input is not None:
            tool_input = unwrap_tool_input(request.json_schema, tool_input)
        # The tool input is the answer; a model that wrote text instead still gets the client's lenient
        # parse, repair and retry, so nothing is lost here.
        text = json.dumps(tool_input, ensure_ascii=False) if tool_input is not None else "".join(texts)
        usage = response.usage
        cached = (getattr(usage, "cache_read_input_tokens", None) or 0) + (
            getattr(usage, "cache_creation_input_tokens", None) or 0)
        return RawResponse(
            text=text,
            input_tokens=usage.input_tokens + cached,
            output_tokens=usage.output_tokens,
            model=response.model or self.model,
            finish_reason=response.stop_reason,
            extra={"tool_use": tool_input is not None, "cached_input_tokens": cached},
        )

