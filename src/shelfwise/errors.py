"""Every error shelfwise raises on purpose, in one place.

    ShelfwiseError                      base: catch this to catch everything below
    ├── ConfigError                     bad or missing settings (file, environment, role mapping)
    │   └── UnknownNameError            a role, backend, model or strategy name that does not exist
    ├── StoreError                      database problems
    │   ├── MigrationError              the schema is behind or ahead of the code
    │   └── NotFoundError               a product, learning, decision ... id that is not stored
    ├── InputError                      bad user or seller data (a listing row, a query, a feedback event)
    │   ├── RowError                    one bad row of an input file, with its line number
    │   └── ConflictError               valid, but clashes with what is stored (already resolved, key reused)
    ├── LLMError                        anything that went wrong talking to a model
    │   ├── BackendUnavailableError     the endpoint or model cannot be reached or loaded
    │   ├── LLMTimeoutError             a call took longer than its timeout (after retries)
    │   ├── StructuredOutputError       the model's JSON stayed invalid after repair and retries
    │   └── ModelIntegrityError         an assembled model file does not match its pinned sha256
    ├── IndexStateError                 a search index is missing or corrupt (says how to rebuild)
    └── NotTrainedError                 a learner is used before it was fitted (says how to train it)

Every message says what happened *and how to fix it*; the API layer maps these to HTTP codes.
"""

from __future__ import annotations

__all__ = [
    "BackendUnavailableError",
    "ConfigError",
    "ConflictError",
    "IndexStateError",
    "InputError",
    "LLMError",
    "LLMTimeoutError",
    "MigrationError",
    "ModelIntegrityError",
    "NotFoundError",
    "NotTrainedError",
    "RowError",
    "ShelfwiseError",
    "StoreError",
    "StructuredOutputError",
    "UnknownNameError",
]


class ShelfwiseError(Exception):
    """Base class. ``fix`` is a short instruction appended to the message."""

    def __init__(self, message: str, *, fix: str | None = None) -> None:
        self.fix = fix
        super().__init__(f"{message} — fix: {fix}" if fix else message)


class ConfigError(ShelfwiseError):
    pass


class UnknownNameError(ConfigError):
    def __init__(self, kind: str, name: str, valid: list[str] | tuple[str, ...]) -> None:
        self.kind, self.name, self.valid = kind, name, sorted(valid)
        super().__init__(
            f"unknown {kind} {name!r}",
            fix=f"use one of: {', '.join(self.valid) or '(none configured)'}",
        )


class StoreError(ShelfwiseError):
    pass


class MigrationError(StoreError):
    pass


class NotFoundError(StoreError):
    def __init__(self, kind: str, key: object, *, fix: str | None = None) -> None:
        self.kind, self.key = kind, key
        super().__init__(f"no {kind} with id {key!r}", fix=fix or f"check the {kind} id (list them first)")


class InputError(ShelfwiseError):
    pass


class ConflictError(InputError):
    """The request is valid but clashes with what is stored: an idempotency key reused for another event, a
    review item already resolved, a learning already in the target state or changed concurrently (HTTP 409)."""


class RowError(InputError):
    def __init__(self, source: str, line: int, problem: str) -> None:
        self.source, self.line, self.problem = source, line, problem
        super().__init__(f"{source}:{line}: {problem}", fix="correct or remove that row; other rows were kept")


class LLMError(ShelfwiseError):
    pass


class BackendUnavailableError(LLMError):
    pass


class LLMTimeoutError(LLMError):
    pass


class StructuredOutputError(LLMError):
    def __init__(self, model: str, prompt_id: str, problem: str, raw: str = "") -> None:
        self.model, self.prompt_id, self.problem, self.raw = model, prompt_id, problem, raw
        super().__init__(
            f"model {model!r} gave invalid structured output for prompt {prompt_id!r}: {problem}",
            fix="raise max_tokens, simplify the schema, or map the role to a stronger model",
        )


class ModelIntegrityError(LLMError):
    pass


class IndexStateError(ShelfwiseError):
    pass


class NotTrainedError(ShelfwiseError):
    pass
