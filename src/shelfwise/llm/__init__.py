"""The LLM layer: one backend interface, a client with structured output and accounting, roles."""

from .base import Backend, ChatRequest, Message, RawResponse
from .client import LLM, CallRecord, Completion, MemoryRecorder, parse_json_lenient
from .registry import LLMRegistry
from .text import fit_to_budget

__all__ = [
    "Backend",
    "ChatRequest",
    "Message",
    "RawResponse",
    "LLM",
    "CallRecord",
    "Completion",
    "MemoryRecorder",
    "LLMRegistry",
    "parse_json_lenient",
    "fit_to_budget",
]
