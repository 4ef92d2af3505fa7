"""The backend contract: one small abstract ``execute`` per backend, capabilities as class attributes."""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..config import RoleConfig

__all__ = ["Backend", "ChatRequest", "Message", "RawResponse"]


class Message(BaseModel):
    model_config = ConfigDict(frozen=True)

    role: Literal["system", "user", "assistant"]
    content: str


class ChatRequest(BaseModel):
    """What every backend receives. ``json_schema`` asks for output matching it (constrained where the
    backend can; validated by the client either way)."""

    model_config = ConfigDict(frozen=True)

    messages: tuple[Message, ...]
    json_schema: dict[str, Any] | None = None
    max_tokens: int = 512
    temperature: float = 0.0
    timeout_s: float = 120.0
    stop: tuple[str, ...] = ()
    seed: int | None = 0


class RawResponse(BaseModel):
    text: str
    input_tokens: int = 0
    output_tokens: int = 0
    model: str = ""
    finish_reason: str | None = None
    extra: dict[str, Any] = Field(default_factory=dict)


class Backend(ABC):
    """A model endpoint. Subclasses set the class attributes and implement ``execute``.

    ``execute`` must raise ``BackendUnavailableError`` when the endpoint cannot be reached (with the URL
    and the fix) and ``LLMTimeoutError`` on timeout; everything else (retries, repair, accounting,
    concurrency limits) is the client's job, so a backend stays small.
    """

    name: ClassVar[str]
    #: decodes under a JSON schema / grammar, so output is valid JSON by construction
    constrained_json: ClassVar[bool] = False
    #: True when ``aexecute`` is natively async (otherwise it runs ``execute`` in a thread)
    native_async: ClassVar[bool] = False
    #: transient errors worth retrying
    retryable: ClassVar[tuple[type[BaseException], ...]] = ()

    def __init__(self, model: str, config: RoleConfig, **options: Any) -> None:
        self.model = model
        self.config = config
        self.options = options

    @abstractmethod
    def execute(self, request: ChatRequest) -> RawResponse:
        """Run one chat request and return the text with its token counts."""

    async def aexecute(self, request: ChatRequest) -> RawResponse:
        return await asyncio.to_thread(self.execute, request)

    def count_tokens(self, text: str) -> int:
        """Token estimate; backends with a tokenizer override it."""
        return max(1, len(text) // 4)

    def close(self) -> None:
        """Release the model or connection."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={self.model!r})"
