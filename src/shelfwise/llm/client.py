"""The client every domain uses: a role's backend wrapped with retries, JSON repair, caching,
bounded concurrency and accounting. Model time is the backend's; everything else here must stay cheap
(benchmarks/foundations.py measures it)."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import logging
import random
import threading
import time
from collections.abc import Sequence
from typing import Any, Protocol, TypeVar

import json_repair
from pydantic import BaseModel, ValidationError

from ..config import RoleConfig
from ..errors import BackendUnavailableError, LLMError, LLMTimeoutError, StructuredOutputError
from ..observability import LLM_CALLS, LLM_LATENCY, LLM_TOKENS, current_trace_id
from .base import Backend, ChatRequest, Message, RawResponse

__all__ = ["LLM", "CallRecord", "Completion", "MemoryRecorder", "Recorder", "ResponseCache"]

log = logging.getLogger("shelfwise.llm")
T = TypeVar("T", bound=BaseModel)


class Completion(BaseModel):
    text: str
    input_tokens: int
    output_tokens: int
    latency_ms: float
    cost_usd: float
    model: str
    cached: bool = False
    attempts: int = 1


class CallRecord(BaseModel):
    role: str
    backend: str
    model: str
    prompt_id: str
    prompt_hash: str
    input_tokens: int = 0
    output_tokens: int = 0
    latency_ms: float = 0.0
    cost_usd: float = 0.0
    cached: bool = False
    ok: bool = True
    error: str | None = None
    trace_id: str | None = None


class Recorder(Protocol):
    def record(self, call: CallRecord) -> None: ...


class MemoryRecorder:
    """Keeps call records in memory (tests, notebooks); ``store.accounting.DbRecorder`` persists them."""

    def __init__(self) -> None:
        self.calls: list[CallRecord] = []

    def record(self, call: CallRecord) -> None:
        self.calls.append(call)


class ResponseCache(Protocol):
    def get(self, prompt_hash: str) -> RawResponse | None: ...
    def put(self, prompt_hash: str, model: str, response: RawResponse, *, replace: bool = False) -> None: ...


def prompt_hash(model: str, request: ChatRequest) -> str:
    payload = json.dumps(
        [model, [(m.role, m.content) for m in request.messages], request.json_schema, request.max_tokens,
         request.temperature, list(request.stop)],
        sort_keys=True, separators=(",", ":"),
    )
    return hashlib.sha256(payload.encode()).hexdigest()


@functools.lru_cache(maxsize=512)
def _schema_of(model: type[BaseModel]) -> dict[str, Any]:
    """The JSON schema of a pydantic model, computed once per class: pydantic rebuilds it from scratch on
    every ``model_json_schema()`` call (~9 ms for an 8-field extraction schema, the client's biggest
    per-call cost before this cache). Shared between calls, so treat it as read-only."""
    return model.model_json_schema()


def parse_json_lenient(text: str) -> Any:
    """Strict JSON first; then a repair pass (code fences, trailing commas, cut-off output)."""
    stripped = text.strip()
    if stripped.startswith("```"):
        stripped = stripped.strip("`")
        stripped = stripped.split("\n", 1)[1] if "\n" in stripped else stripped
    try:
        return json.loads(stripped)
    except json.JSONDecodeError:
        repaired = json_repair.loads(stripped)
        if repaired in ("", None) and stripped not in ("null", '""'):
            raise ValueError("no JSON value found in the output") from None
        return repaired


class LLM:
    """A role bound to a backend. Thread-safe; ``max concurrency`` comes from the role config."""

    def __init__(
        self,
        role: str,
        backend: Backend,
        config: RoleConfig | None = None,
        *,
        recorder: Recorder | None = None,
        cache: ResponseCache | None = None,
        sleep=time.sleep,  # injectable so tests of backoff do not wait
    ) -> None:
        self.role = role
        self.backend = backend
        self.config = config or backend.config
        self.recorder = recorder or MemoryRecorder()
        self.cache = cache
        self._sleep = sleep
        self._limit = threading.BoundedSemaphore(self.config.concurrency)
        self._alimit: asyncio.Semaphore | None = None

    @property
    def model(self) -> str:
        return self.backend.model

    # -- plain text ---------------------------------------------------------------------------------
    def complete(
        self,
        messages: Sequence[Message] | str,
        *,
        prompt_id: str = "adhoc",
        json_schema: dict[str, Any] | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
        stop: Sequence[str] = (),
        use_cache: bool = True,
    ) -> Completion:
        request = self._request(messages, json_schema, max_tokens, temperature, stop)
        return self._run(request, prompt_id, use_cache)

    async def acomplete(
        self,
        messages: Sequence[Message] | str,
        *,
        prompt_id: str = "adhoc",
        json_schema: dict[str, Any] | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
        stop: Sequence[str] = (),
        use_cache: bool = True,
    ) -> Completion:
        request = self._request(messages, json_schema, max_tokens, temperature, stop)
        if self._alimit is None:
            self._alimit = asyncio.Semaphore(self.config.concurrency)
        async with self._alimit:
            return await self._arun(request, prompt_id, use_cache)

    # -- structured ---------------------------------------------------------------------------------
    def structured(
        self,
        messages: Sequence[Message] | str,
        schema: type[T],
        *,
        prompt_id: str = "adhoc",
        max_tokens: int | None = None,
        use_cache: bool = True,
    ) -> tuple[T, Completion]:
        """Ask for JSON matching ``schema``: validate, repair, then retry with the error shown to the model,
        then raise ``StructuredOutputError`` naming the model and prompt.

        Only an answer that validated is cached, under the key of the *original* request (a corrected
        answer from a retry included), so an identical later call is served from the cache; a cached entry
        that does not validate (written before this rule) is ignored, not replayed."""
        msgs = self._messages(messages)
        json_schema = _schema_of(schema)
        first = self._request(msgs, json_schema, max_tokens, None, ())
        key = prompt_hash(self.model, first)
        cache = self.cache if use_cache else None
        hit = cache.get(key) if cache is not None else None
        if hit is not None:
            value, problem = self._validate(hit.text, schema)
            if value is not None:
                return value, self._hit(key, prompt_id, hit)
            log.info("ignoring a cached answer of %s (%s) that does not validate: %s", self.model, prompt_id,
                     problem)
        last_problem, last_text = "", ""
        for attempt in range(self.config.max_retries + 1):
            request = first if attempt == 0 else self._request(msgs, json_schema, max_tokens, None, ())
            completion = self._run(request, prompt_id, use_cache=False)
            value, problem = self._validate(completion.text, schema)
            if value is not None:
                completion.attempts = attempt + 1
                if cache is not None:  # replacing an invalid cached answer, which would otherwise stay first
                    cache.put(key, self.model, RawResponse(
                        text=completion.text, input_tokens=completion.input_tokens,
                        output_tokens=completion.output_tokens, model=completion.model), replace=hit is not None)
                return value, completion
            last_problem, last_text = problem, completion.text
            log.info("invalid structured output from %s (%s), attempt %d: %s", self.model, prompt_id,
                     attempt + 1, problem)
            msgs = [*msgs, Message(role="assistant", content=completion.text[:2000]),
                    Message(role="user", content=f"That was not valid: {problem}. "
                            "Reply again with only the JSON object, matching the schema exactly.")]
        raise StructuredOutputError(self.model, prompt_id, last_problem, last_text)

    async def astructured(
        self,
        messages: Sequence[Message] | str,
        schema: type[T],
        *,
        prompt_id: str = "adhoc",
        max_tokens: int | None = None,
    ) -> tuple[T, Completion]:
        return await asyncio.to_thread(
            self.structured, messages, schema, prompt_id=prompt_id, max_tokens=max_tokens
        )

    @staticmethod
    def _validate(text: str, schema: type[T]) -> tuple[T | None, str]:
        try:
            data = parse_json_lenient(text)
        except ValueError as exc:
            return None, f"not JSON ({exc})"
        try:
            return schema.model_validate(data), ""
        except ValidationError as exc:
            err = exc.errors()[0]
            return None, f"{'.'.join(map(str, err['loc'])) or 'value'}: {err['msg']}"

    # -- internals ----------------------------------------------------------------------------------
    @staticmethod
    def _messages(messages: Sequence[Message] | str) -> list[Message]:
        if isinstance(messages, str):
            return [Message(role="user", content=messages)]
        return list(messages)

    def _request(self, messages, json_schema, max_tokens, temperature, stop) -> ChatRequest:  # type: ignore[no-untyped-def]
        return ChatRequest(
            messages=tuple(self._messages(messages)),
            json_schema=json_schema,
            max_tokens=max_tokens or self.config.max_tokens,
            temperature=self.config.temperature if temperature is None else temperature,
            timeout_s=self.config.timeout_s,
            stop=tuple(stop),
        )

    def _cost(self, raw: RawResponse) -> float:
        c = self.config
        return (raw.input_tokens * c.price_in_per_mtok + raw.output_tokens * c.price_out_per_mtok) / 1e6

    def _hit(self, h: str, prompt_id: str, hit: RawResponse) -> Completion:
        comp = Completion(text=hit.text, input_tokens=hit.input_tokens, output_tokens=hit.output_tokens,
                          latency_ms=0.0, cost_usd=0.0, model=self.model, cached=True)
        self._record(h, comp, prompt_id, ok=True)
        return comp

    def _cached(self, request: ChatRequest, prompt_id: str, use_cache: bool) -> tuple[str, Completion | None]:
        h = prompt_hash(self.model, request)
        if use_cache and self.cache is not None:
            hit = self.cache.get(h)
            if hit is not None:
                return h, self._hit(h, prompt_id, hit)
        return h, None

    def _run(self, request: ChatRequest, prompt_id: str, use_cache: bool) -> Completion:
        h, hit = self._cached(request, prompt_id, use_cache)
        if hit is not None:
            return hit
        attempts = self.config.max_retries + 1
        for attempt in range(attempts):
            start = time.perf_counter()
            try:
                with self._limit:
                    raw = self.backend.execute(request)
            except (BackendUnavailableError, LLMTimeoutError, *self.backend.retryable) as exc:
                self._fail(h, prompt_id, exc, start)
                if attempt + 1 >= attempts:
                    raise self._final_error(exc) from exc
                self._sleep(min(8.0, 0.25 * 2**attempt) * (0.5 + random.random()))
                continue
            except LLMError as exc:
                self._fail(h, prompt_id, exc, start)
                raise
            return self._finish(h, prompt_id, request, raw, start, use_cache, attempt + 1)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _arun(self, request: ChatRequest, prompt_id: str, use_cache: bool) -> Completion:
        h, hit = self._cached(request, prompt_id, use_cache)
        if hit is not None:
            return hit
        attempts = self.config.max_retries + 1
        for attempt in range(attempts):
            start = time.perf_counter()
            try:
                raw = await asyncio.wait_for(self.backend.aexecute(request), timeout=request.timeout_s)
            except TimeoutError as exc:
                err: BaseException = LLMTimeoutError(
                    f"{self.backend.name} model {self.model!r} took longer than {request.timeout_s}s",
                    fix=f"raise roles.{self.role}.timeout_s or use a faster model")
                self._fail(h, prompt_id, err, start)
                if attempt + 1 >= attempts:
                    raise err from exc
            except (BackendUnavailableError, LLMTimeoutError, *self.backend.retryable) as exc:
                self._fail(h, prompt_id, exc, start)
                if attempt + 1 >= attempts:
                    raise self._final_error(exc) from exc
            except LLMError as exc:  # not retryable (a refused request): recorded like the sync path does
                self._fail(h, prompt_id, exc, start)
                raise
            else:
                return self._finish(h, prompt_id, request, raw, start, use_cache, attempt + 1)
            await asyncio.sleep(min(8.0, 0.25 * 2**attempt) * (0.5 + random.random()))
        raise AssertionError("unreachable")  # pragma: no cover

    def _final_error(self, exc: BaseException) -> LLMError:
        if isinstance(exc, LLMError):
            return exc
        return BackendUnavailableError(
            f"{self.backend.name} model {self.model!r} failed after {self.config.max_retries + 1} attempts: {exc}",
            fix=f"check the endpoint for role {self.role!r} (`shelfwise llm ping {self.role}`)",
        )

    def _finish(self, h, prompt_id, request, raw: RawResponse, start, use_cache, attempts) -> Completion:  # type: ignore[no-untyped-def]
        latency = (time.perf_counter() - start) * 1000
        comp = Completion(text=raw.text, input_tokens=raw.input_tokens, output_tokens=raw.output_tokens,
                          latency_ms=latency, cost_usd=self._cost(raw), model=raw.model or self.model,
                          attempts=attempts)
        if use_cache and self.cache is not None:
            self.cache.put(h, self.model, raw)
        self._record(h, comp, prompt_id, ok=True)
        return comp

    def _fail(self, h: str, prompt_id: str, exc: BaseException, start: float) -> None:
        latency = (time.perf_counter() - start) * 1000
        comp = Completion(text="", input_tokens=0, output_tokens=0, latency_ms=latency, cost_usd=0.0,
                          model=self.model)
        self._record(h, comp, prompt_id, ok=False, error=f"{type(exc).__name__}: {exc}"[:500])

    def _record(self, h: str, comp: Completion, prompt_id: str, *, ok: bool, error: str | None = None) -> None:
        outcome = "cached" if comp.cached else ("ok" if ok else "error")
        LLM_CALLS.labels(self.role, self.model, outcome).inc()
        if not comp.cached and ok:
            LLM_TOKENS.labels(self.role, self.model, "in").inc(comp.input_tokens)
            LLM_TOKENS.labels(self.role, self.model, "out").inc(comp.output_tokens)
            LLM_LATENCY.labels(self.role, self.model).observe(comp.latency_ms / 1000)
        self.recorder.record(CallRecord(
            role=self.role, backend=self.backend.name, model=self.model, prompt_id=prompt_id, prompt_hash=h,
            input_tokens=comp.input_tokens, output_tokens=comp.output_tokens, latency_ms=comp.latency_ms,
            cost_usd=comp.cost_usd, cached=comp.cached, ok=ok, error=error, trace_id=current_trace_id(),
        ))
