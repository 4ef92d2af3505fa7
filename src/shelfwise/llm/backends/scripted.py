"""A test double: answers from a queue of scripted responses. For unit tests only — never a default."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from ...config import RoleConfig
from ...errors import BackendUnavailableError
from ..base import Backend, ChatRequest, RawResponse

__all__ = ["ScriptedBackend"]

Responder = Callable[[ChatRequest], "str | BaseException"]


class ScriptedBackend(Backend):
    """Returns enqueued texts (or raises enqueued exceptions) in order; or asks a ``responder`` function.

    Every request is kept in ``requests`` so tests can assert what was sent."""

    name = "scripted"
    constrained_json = False

    def __init__(self, model: str = "scripted", config: RoleConfig | None = None, **options: Any) -> None:
        super().__init__(model, config or RoleConfig(backend="scripted", model=model), **options)
        self._queue: deque[str | BaseException] = deque()
        self._lock = threading.Lock()
        self.responder: Responder | None = options.get("responder")
        self.requests: list[ChatRequest] = []

    def enqueue(self, *responses: str | BaseException | Iterable[str]) -> ScriptedBackend:
        for r in responses:
            if isinstance(r, (str, BaseException)):
                self._queue.append(r)
            else:
                self._queue.extend(r)
        return self

    def execute(self, request: ChatRequest) -> RawResponse:
        with self._lock:
            self.requests.append(request)
            queued: str | BaseException | None = self._queue.popleft() if self._queue else None
        # The responder runs outside the lock: holding it serialised every call, so the client's
        # concurrency limit could never be observed (tests/llm/test_client.py::test_concurrency_is_bounded).
        if queued is not None:
            item: str | BaseException = queued
        elif self.responder is not None:
            item = self.responder(request)
        else:
            raise BackendUnavailableError(
                "scripted backend has no response left",
                fix="enqueue more responses or set a responder in the test",
            )
        if isinstance(item, BaseException):
            raise item
        prompt = " ".join(m.content for m in request.messages)
        return RawResponse(
            text=item,
            input_tokens=self.count_tokens(prompt),
            output_tokens=self.count_tokens(item),
            model=self.model,
            finish_reason="stop",
        )
