"""Any OpenAI-compatible chat endpoint (vLLM, Ollama, llama.cpp server, OpenAI) through the official SDK.

Structured output degrades gracefully, because servers differ in what they accept:

1. ``json_schema``  -- ``response_format={"type": "json_schema", "json_schema": {...}}`` (OpenAI, vLLM,
   Ollama >= 0.5, llama.cpp's ``llama-server``);
2. ``json_object``  -- ``{"type": "json_object", "schema": {...}}`` plus the schema in the system prompt
   (llama-cpp-python's server turns the ``schema`` key into a grammar; others at least force JSON);
3. ``prompt``       -- no ``response_format`` at all, the schema only in the system prompt.

A server that rejects a mode (400 / 422 about the response format) moves the instance down one step for
good, so the probe costs one failed request per backend instance, not one per call. The SDK's own retries
are off (``max_retries=0``): the client retries with backoff and records every attempt.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import weakref
from typing import Any

import openai

from ...config import RoleConfig
from ...errors import LLMError
from ..base import Backend, ChatRequest, Message, RawResponse
from ._remote import overloaded, rejected, schema_name, short, timed_out, unavailable, with_schema_in_system

__all__ = ["MODES", "OpenAIBackend"]

log = logging.getLogger("shelfwise.llm")

MODES = ("json_schema", "json_object", "prompt")
# words a server's 400/422 uses when it is the response format it cannot handle (vs. a bad prompt)
_FORMAT_HINTS = ("response_format", "json_schema", "json_object", "schema", "grammar")


class OpenAIBackend(Backend):
    """``roles.<role>`` with ``backend = "openai"``: ``base_url`` (default: the SDK's, i.e. OpenAI or
    ``OPENAI_BASE_URL``), ``api_key`` (default ``OPENAI_API_KEY`` or ``"not-needed"`` for local servers),
    ``timeout_s``. Option ``mode`` starts structured output at a lower step (e.g. ``"prompt"``)."""

    name = "openai"
    constrained_json = False  # depends on the server; the client validates either way
    native_async = True
    retryable = ()  # 429 / 5xx are mapped to BackendUnavailableError, which the client retries

    def __init__(self, model: str, config: RoleConfig, **options: Any) -> None:
        super().__init__(model, config, **options)
        mode = options.get("mode", "json_schema")
        if mode not in MODES:
            raise LLMError(f"unknown structured-output mode {mode!r}", fix=f"use one of: {', '.join(MODES)}")
        self._mode_index = MODES.index(mode)
        # OpenAI's reasoning models refuse ``max_tokens`` and any temperature but the default; learnt from
        # the first refusal, like the response format
        self._tokens_param = "max_tokens"
        self._send_temperature = True
        self._lock = threading.Lock()
        key = config.api_key.get_secret_value() if config.api_key else None
        self._client_kwargs: dict[str, Any] = {
            "base_url": config.base_url,
            "api_key": key or _env_key(),
            "timeout": config.timeout_s,
            "max_retries": 0,
        }
        self._client = openai.OpenAI(**self._client_kwargs)
        # httpx async pools belong to one event loop, so one AsyncOpenAI per loop
        self._aclients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, openai.AsyncOpenAI] = (
            weakref.WeakKeyDictionary()
        )

    @property
    def url(self) -> str:
        return str(self._client.base_url).rstrip("/")

    @property
    def mode(self) -> str:
        """The structured-output mode this instance currently uses (see the module docstring)."""
        return MODES[self._mode_index]

    # -- calls --------------------------------------------------------------------------------------
    def execute(self, request: ChatRequest) -> RawResponse:
        while True:
            index = self._mode_index
            try:
                response = self._client.chat.completions.create(**self._kwargs(request, index))
            except openai.APIError as exc:
                self._after_error(exc, request, index)
                continue
            except ValueError as exc:  # a 200 whose body is not JSON (empty, a proxy's page)
                raise self._unreadable(f"the body is not JSON ({exc})") from exc
            return self._parse(response, request)

    async def aexecute(self, request: ChatRequest) -> RawResponse:
        client = self._aclient()
        while True:
            index = self._mode_index
            try:
                response = await client.chat.completions.create(**self._kwargs(request, index))
            except openai.APIError as exc:
                self._after_error(exc, request, index)
                continue
            except ValueError as exc:  # a 200 whose body is not JSON (empty, a proxy's page)
                raise self._unreadable(f"the body is not JSON ({exc})") from exc
            return self._parse(response, request)

    def close(self) -> None:
        self._client.close()
        self._aclients.clear()

    # -- internals ----------------------------------------------------------------------------------
    def _aclient(self) -> openai.AsyncOpenAI:
        loop = asyncio.get_running_loop()
        client = self._aclients.get(loop)
        if client is None:
            client = self._aclients[loop] = openai.AsyncOpenAI(**self._client_kwargs)
        return client

    def _kwargs(self, request: ChatRequest, index: int) -> dict[str, Any]:
        messages: list[Message] = list(request.messages)
        kwargs: dict[str, Any] = {
            "model": self.model,
            self._tokens_param: request.max_tokens,
            "timeout": request.timeout_s,
        }
        if self._send_temperature:
            kwargs["temperature"] = request.temperature
        if request.stop:
            kwargs["stop"] = list(request.stop)
        if request.seed is not None:
            kwargs["seed"] = request.seed
        schema = request.json_schema
        if schema is not None:
            mode = MODES[index]
            if mode == "json_schema":
                kwargs["response_format"] = {
                    "type": "json_schema",
                    # strict=False: OpenAI's strict mode demands every property required and no defaults
                    "json_schema": {"name": schema_name(schema), "schema": schema, "strict": False},
                }
            else:
                # OpenAI's json_object mode also insists the word "JSON" appears in the messages
                messages = with_schema_in_system(request)
                if mode == "json_object":
                    kwargs["response_format"] = {"type": "json_object", "schema": schema}
        kwargs["messages"] = [{"role": m.role, "content": m.content} for m in messages]
        return kwargs

    def _after_error(self, exc: openai.APIError, request: ChatRequest, index: int) -> None:
        """Map an SDK error to ours and raise it, or step the structured-output mode down and return."""
        url = self.url
        if isinstance(exc, openai.APITimeoutError):
            raise timed_out(self.name, url, self.model, request.timeout_s) from exc
        if isinstance(exc, openai.APIConnectionError):
            raise unavailable(self.name, url, self.model, exc.__cause__ or exc) from exc
        if isinstance(exc, openai.APIStatusError):
            status = exc.status_code
            if status == 400 and self._adapt_parameters(exc):
                return
            if request.json_schema is not None and index + 1 < len(MODES) and _refuses_format(exc):
                with self._lock:
                    if self._mode_index == index:  # another thread may have stepped down already
                        self._mode_index = index + 1
                        log.info("%s at %s refused response format %r (%s); using %r from now on",
                                    self.model, url, MODES[index], status, MODES[index + 1])
                return
            if status == 429 or status >= 500:
                raise overloaded(self.name, url, self.model, status, exc.message) from exc
            raise rejected(self.name, url, self.model, status, exc.message) from exc
        raise self._unreadable(exc) from exc

    def _unreadable(self, detail: object) -> LLMError:
        # not retried: a server that answers 200 with something other than a chat completion is usually not
        # an OpenAI-compatible /v1 API at all (a web page, a proxy), and asking again gives the same
        return LLMError(f"{self.name} endpoint {self.url} (model {self.model!r}) sent an unreadable answer: "
                        f"{short(detail)}", fix="check that base_url points at an OpenAI-compatible /v1 API")

    def _adapt_parameters(self, exc: openai.APIStatusError) -> bool:
        text = f"{exc.message} {exc.body}"
        with self._lock:
            if self._tokens_param == "max_tokens" and "max_completion_tokens" in text:
                self._tokens_param = "max_completion_tokens"
            elif self._send_temperature and "temperature" in text and "unsupported" in text.lower():
                self._send_temperature = False
            else:
                return False
        log.warning("%s at %s: adapted the request to %r", self.model, self.url, exc.message)
        return True

    def _parse(self, response: Any, request: ChatRequest) -> RawResponse:
        # the SDK does not validate what it parses: a text/html 200 arrives as a str, a body without
        # "choices" or "message" as a ChatCompletion whose fields are None
        choices = getattr(response, "choices", None)
        if not isinstance(choices, list) or not choices:
            raise self._unreadable("no choices in the reply")
        choice = choices[0]
        message = getattr(choice, "message", None)
        if not hasattr(message, "content"):
            raise self._unreadable("the first choice has no message")
        text = message.content or ""
        if not isinstance(text, str):
            raise self._unreadable("the message content is not text")
        usage = getattr(response, "usage", None)
        tokens_in, tokens_out = getattr(usage, "prompt_tokens", None), getattr(usage, "completion_tokens", None)
        extra: dict[str, Any] = {"mode": self.mode if request.json_schema is not None else "text"}
        if isinstance(tokens_in, int):
            tokens_out = tokens_out if isinstance(tokens_out, int) else 0
        else:  # some servers omit usage; estimate rather than record zero, and say so
            tokens_in = sum(self.count_tokens(m.content) for m in request.messages)
            tokens_out = self.count_tokens(text)
            extra["usage_estimated"] = True
        return RawResponse(text=text, input_tokens=tokens_in, output_tokens=tokens_out,
                           model=getattr(response, "model", None) or self.model,
                           finish_reason=getattr(choice, "finish_reason", None), extra=extra)


def _refuses_format(exc: openai.APIStatusError) -> bool:
    """Did the server refuse the response format (rather than the prompt, or fail for other reasons)?
    llama-cpp-python answers an unknown ``response_format`` with a 500 naming it, so 5xx count too when
    they name it; a 400 / 422 only has to mention a schema-ish word."""
    text = f"{exc.message} {exc.body}".lower()
    if exc.status_code in (400, 422):
        return exc.status_code == 422 or any(h in text for h in _FORMAT_HINTS)
    return exc.status_code >= 500 and "response_format" in text


def _env_key() -> str:
    # local servers ignore the key, but the SDK refuses to start without one
    return os.environ.get("OPENAI_API_KEY") or "not-needed"
