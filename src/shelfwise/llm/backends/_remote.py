"""Pieces shared by the remote backends (openai, anthropic, bedrock): message shaping, the forced
"answer" tool used for structured output, the schema-in-the-prompt fallback, and the error messages."""

from __future__ import annotations

import json
import re
from typing import Any

from ...errors import BackendUnavailableError, LLMError, LLMTimeoutError
from ..base import ChatRequest, Message

__all__ = [
    "TOOL_NAME",
    "merge_turns",
    "overloaded",
    "rejected",
    "schema_instruction",
    "schema_name",
    "short",
    "split_system",
    "timed_out",
    "tool_schema",
    "unavailable",
    "unwrap_tool_input",
]

#: the single tool the Anthropic and Bedrock backends force, whose input *is* the structured answer
TOOL_NAME = "record_answer"
TOOL_DESCRIPTION = "Record the answer. Its input must match the JSON schema exactly; it is the whole reply."


def split_system(messages: tuple[Message, ...] | list[Message]) -> tuple[str, list[Message]]:
    """System text (all system messages joined) and the conversation without them. The Anthropic and
    Bedrock APIs take the system prompt as a separate field, not as a turn."""
    system = "\n\n".join(m.content for m in messages if m.role == "system")
    return system, [m for m in messages if m.role != "system"]


def merge_turns(messages: list[Message]) -> list[tuple[str, str]]:
    """(role, text) turns with consecutive same-role messages merged and a leading user turn guaranteed:
    both providers reject two user turns in a row or a conversation that opens with the assistant."""
    turns: list[tuple[str, str]] = []
    for m in messages:
        if turns and turns[-1][0] == m.role:
            turns[-1] = (m.role, turns[-1][1] + "\n\n" + m.content)
        else:
            turns.append((m.role, m.content))
    if not turns or turns[0][0] != "user":
        turns.insert(0, ("user", "(see above)" if turns else "Answer."))
    return turns


def schema_instruction(schema: dict[str, Any]) -> str:
    """The fallback when an endpoint cannot constrain decoding: the schema as an instruction. The client
    still validates (and repairs / retries) whatever comes back."""
    return (
        "Reply with a single JSON object and nothing else (no prose, no code fence). "
        "It must match this JSON schema:\n" + json.dumps(schema, separators=(",", ":"))
    )


def with_schema_in_system(request: ChatRequest) -> list[Message]:
    """The request's messages with the schema instruction appended to the system prompt."""
    assert request.json_schema is not None
    note = schema_instruction(request.json_schema)
    msgs = list(request.messages)
    for i, m in enumerate(msgs):
        if m.role == "system":
            msgs[i] = Message(role="system", content=m.content + "\n\n" + note)
            return msgs
    return [Message(role="system", content=note), *msgs]


def schema_name(schema: dict[str, Any]) -> str:
    """A name OpenAI accepts for ``json_schema.name`` (``^[a-zA-Z0-9_-]{1,64}$``)."""
    raw = str(schema.get("title") or "answer")
    return re.sub(r"[^a-zA-Z0-9_-]", "_", raw)[:64] or "answer"


def tool_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """Tool inputs must be JSON objects; anything else (a list, a bare string) is wrapped in
    ``{"value": ...}`` and unwrapped again by ``unwrap_tool_input``."""
    if schema.get("type") == "object":
        return schema
    inner = {k: v for k, v in schema.items() if k != "$defs"}
    wrapped: dict[str, Any] = {"type": "object", "properties": {"value": inner}, "required": ["value"]}
    if "$defs" in schema:
        wrapped["$defs"] = schema["$defs"]
    return wrapped


def unwrap_tool_input(schema: dict[str, Any] | None, tool_input: Any) -> Any:
    if schema is not None and schema.get("type") != "object" and isinstance(tool_input, dict):
        return tool_input.get("value", tool_input)
    return tool_input


# -- errors ---------------------------------------------------------------------------------------------
def unavailable(backend: str, url: str, model: str, detail: object) -> BackendUnavailableError:
    return BackendUnavailableError(
        f"{backend} endpoint {url} (model {model!r}) cannot be reached: {detail}",
        fix=f"start the server at {url} or set roles.<role>.base_url "
        "(env SHELFWISE_ROLES__<ROLE>__BASE_URL) to one that is running",
    )


def timed_out(backend: str, url: str, model: str, timeout_s: float) -> LLMTimeoutError:
    return LLMTimeoutError(
        f"{backend} endpoint {url} (model {model!r}) did not answer within {timeout_s}s",
        fix="raise roles.<role>.timeout_s, lower max_tokens, or use a faster model",
    )


def overloaded(backend: str, url: str, model: str, status: int | str, detail: object) -> BackendUnavailableError:
    """429 / 5xx / throttling: transient, so a ``BackendUnavailableError`` the client retries with backoff."""
    return BackendUnavailableError(
        f"{backend} endpoint {url} (model {model!r}) answered {status}: {short(detail)}",
        fix="retry later, lower roles.<role>.concurrency, or raise the provider's rate limit",
    )


def rejected(backend: str, url: str, model: str, status: int | str, detail: object) -> LLMError:
    """4xx other than 429: retrying the same request cannot help, so a plain ``LLMError``."""
    if status in (401, 403, "AccessDeniedException", "UnrecognizedClientException"):
        fix = "set roles.<role>.api_key (or the provider's credentials) to a valid key"
    elif status in (404, "ResourceNotFoundException"):
        fix = f"check roles.<role>.model ({model!r}) against the models {url} serves"
    else:
        fix = "check the role's model and options; the endpoint refused the request as sent"
    return LLMError(f"{backend} endpoint {url} (model {model!r}) refused the request ({status}): "
                    f"{short(detail)}", fix=fix)


def short(detail: object, limit: int = 300) -> str:
    text = str(detail).replace("\n", " ")
    return text if len(text) <= limit else text[:limit] + "…"
