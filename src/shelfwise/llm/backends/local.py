"""The embedded default: llama.cpp in process (llama-cpp-python) on a GGUF model shipped in PyPI packages.

JSON-schema requests decode under a GBNF grammar built from the schema, so the output is valid JSON of the
right shape by construction (``maxLength``, ``enum`` and nullable ``anyOf`` all become grammar rules, which
is what keeps a string field from running on to the token limit).
"""

from __future__ import annotations

import json
import threading
import time
from functools import lru_cache
from pathlib import Path
from typing import Any

from ...config import RoleConfig
from ...errors import BackendUnavailableError, ConfigError, LLMError, LLMTimeoutError
from ..base import Backend, ChatRequest, RawResponse
from ..models import embedded_model, model_path

__all__ = ["LocalBackend", "PromptStates", "grammar_for_schema"]

try:  # imported lazily by the backend registry, so a missing extra surfaces as a ConfigError there
    from llama_cpp import Llama, LlamaRAMCache, StoppingCriteriaList
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter
    from llama_cpp.llama_grammar import LlamaGrammar, json_schema_to_gbnf
except ImportError as exc:  # pragma: no cover - depends on the install
    raise ImportError(exc.msg, name="llama_cpp") from exc


class PromptStates(LlamaRAMCache):
    """llama.cpp states keyed by prompt tokens, so the roles that share one embedded model (generator,
    evaluator, memory manager on the 0.5B) each resume from their own prompt prefix (system prompt, schema,
    learnings) instead of re-reading it after another role's call (llama.cpp itself reuses only the prefix
    shared with the previous call). Measured on 6 OA-Mine products, one core: 50.1 -> 39.0 s a product
    (``benchmarks/enrich_prompt_cache.py``, docs/llm-backends.md).

    Each state is stored without its logits matrix: upstream copies ``n_batch x vocab`` floats (~300 MB for
    Qwen's 152k-token vocabulary) into every state and counts only the KV bytes against the capacity, so
    the cache could grow far past it. Generation always re-evaluates a prompt's last token, so the stored
    logits are never read; one row keeps ``load_state``'s broadcast assignment valid."""

    def __setitem__(self, key: Any, value: Any) -> None:
        value.scores = value.scores[-1:].copy()
        super().__setitem__(key, value)


class _Deadline:
    """A stopping criterion that ends generation once the deadline has passed. Stopping criteria run in
    Python between tokens, so this stops llama.cpp cleanly (a logits processor cannot: it runs inside a C
    callback that swallows exceptions)."""

    def __init__(self, timeout_s: float) -> None:
        self.deadline = time.monotonic() + timeout_s
        self.expired = False

    def __call__(self, input_ids: Any, logits: Any) -> bool:
        self.expired = time.monotonic() > self.deadline
        return self.expired


@lru_cache(maxsize=128)
def _grammar_text(schema_json: str) -> str:
    return json_schema_to_gbnf(schema_json)


def grammar_for_schema(schema: dict[str, Any]) -> LlamaGrammar:
    """The GBNF grammar for a JSON schema, cached by schema (conversion costs ~1 ms; extraction schemas
    repeat). Unlike llama-cpp-python's ``response_format`` path, an unsupported schema raises instead of
    silently falling back to unconstrained JSON."""
    text = json.dumps(schema, sort_keys=True, separators=(",", ":"))
    try:
        return LlamaGrammar.from_string(_grammar_text(text), verbose=False)
    except Exception as exc:
        raise ConfigError(
            f"cannot turn this JSON schema into a decoding grammar: {exc}",
            fix="simplify the pydantic model (plain fields, enums, Optional, lists with max_length)",
        ) from exc


class LocalBackend(Backend):
    """One ``Llama`` per backend instance, loaded on first use. llama.cpp contexts are not thread-safe, so
    calls are serialised by a lock (the client's concurrency limit is for remote endpoints)."""

    name = "local"
    constrained_json = True

    def __init__(self, model: str, config: RoleConfig, **options: Any) -> None:
        super().__init__(model, config, **options)
        self.spec = embedded_model(model)  # fails early with the valid names
        self.threads = int(options.get("threads", 2))
        self.cache_dir = Path(options.get("cache_dir", Path(".shelfwise") / "models"))
        self.n_ctx = min(config.context_tokens, self.spec.context_length)
        self.prompt_cache_mb = int(options.get("prompt_cache_mb", 0))
        self._llama: Llama | None = None
        self._chat: Jinja2ChatFormatter | None = None
        self._lock = threading.Lock()

    # -- loading --------------------------------------------------------------------------------------
    def _load(self) -> Llama:
        if self._llama is None:
            path = model_path(self.model, self.cache_dir)  # verified before llama.cpp reads a byte
            try:
                self._llama = Llama(
                    model_path=str(path), n_ctx=self.n_ctx, n_threads=self.threads,
                    n_threads_batch=self.threads, n_batch=512,
                    verbose=False,
                )
                if self.prompt_cache_mb:
                    self._llama.set_cache(PromptStates(capacity_bytes=self.prompt_cache_mb * 2**20))
            except Exception as exc:
                raise BackendUnavailableError(
                    f"llama.cpp could not load embedded model {self.model!r} from {path}: {exc}",
                    fix="check free memory and that llama-cpp-python was built portable "
                    "(CMAKE_ARGS='-DGGML_NATIVE=OFF ...', see README); or map the role to a remote backend",
                ) from exc
        return self._llama

    def _formatter(self, llama: Llama) -> Jinja2ChatFormatter:
        """The chat template: the spec's override, else the one stored in the GGUF metadata (what
        ``create_chat_completion`` would use; we call ``create_completion`` to get stopping criteria)."""
        if self._chat is None:
            template = self.spec.chat_template or llama.metadata.get("tokenizer.chat_template")
            if not template:
                raise BackendUnavailableError(f"embedded model {self.model!r} has no chat template",
                                              fix="set chat_template in its llm.models entry")
            eos = llama.token_eos()
            self._chat = Jinja2ChatFormatter(
                template=template, eos_token=llama._model.token_get_text(eos),
                bos_token=llama._model.token_get_text(llama.token_bos()), stop_token_ids=[eos])
        return self._chat

    def load(self) -> Backend:
        """Load the model now instead of on the first call (warm-up, benchmarks)."""
        with self._lock:
            self._load()
        return self

    def close(self) -> None:
        with self._lock:
            if self._llama is not None:
                self._llama.close()
                self._llama = None
                self._chat = None

    # -- calls ----------------------------------------------------------------------------------------
    def execute(self, request: ChatRequest) -> RawResponse:
        if not self._lock.acquire(timeout=request.timeout_s):
            raise LLMTimeoutError(
                f"embedded model {self.model!r} stayed busy for {request.timeout_s}s",
                fix="raise the role's timeout_s or send fewer parallel calls to one embedded model",
            )
        try:
            llama = self._load()
            deadline = _Deadline(request.timeout_s)
            formatted = self._formatter(llama)(
                messages=[{"role": m.role, "content": m.content} for m in request.messages])
            prompt = llama.tokenize(formatted.prompt.encode("utf-8"), add_bos=not formatted.added_special,
                                    special=True)
            stops = [*(request.stop or ()), *([formatted.stop] if isinstance(formatted.stop, str)
                                               else (formatted.stop or []))]
            criteria = [deadline] + ([formatted.stopping_criteria] if formatted.stopping_criteria else [])
            if len(prompt) + request.max_tokens > self.n_ctx:
                raise LLMError(
                    f"prompt of {len(prompt)} tokens + max_tokens {request.max_tokens} exceeds the "
                    f"{self.n_ctx}-token context of embedded model {self.model!r}",
                    fix="cut the listing text with shelfwise.llm.fit_to_budget or raise the role's context_tokens",
                )
            out = llama.create_completion(
                prompt=prompt, max_tokens=request.max_tokens, temperature=request.temperature,
                top_p=0.95, top_k=40, min_p=0.05, repeat_penalty=1.0, seed=request.seed, stop=stops or None,
                stopping_criteria=StoppingCriteriaList(criteria),
                grammar=grammar_for_schema(request.json_schema) if request.json_schema is not None else None,
            )
            if deadline.expired:
                raise LLMTimeoutError(
                    f"embedded model {self.model!r} took longer than {request.timeout_s}s",
                    fix="raise the role's timeout_s, lower max_tokens, or use the smaller model",
                )
        finally:
            self._lock.release()
        choice = out["choices"][0]
        usage = out.get("usage") or {}
        return RawResponse(
            text=choice.get("text") or "",
            input_tokens=int(usage.get("prompt_tokens", 0)),
            output_tokens=int(usage.get("completion_tokens", 0)),
            model=self.model,
            finish_reason=choice.get("finish_reason"),
        )

    def count_tokens(self, text: str) -> int:
        """Exact count with the model's tokenizer (the vocabulary is read-only, so no lock is needed once
        the model is loaded)."""
        if self._llama is None:
            self.load()
        assert self._llama is not None
        return len(self._llama.tokenize(text.encode("utf-8"), add_bos=False, special=False))
