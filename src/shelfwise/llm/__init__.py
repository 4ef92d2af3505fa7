"""The LLM layer: one backend interface, a client with structured output and accounting, roles, the
embedded model catalog and the embedders.

Backends live in ``shelfwise.llm.backends`` and are imported by name only when a role uses them (so the
optional SDKs and llama.cpp are not needed to import this package)."""

from .base import Backend, ChatRequest, Message, RawResponse
from .client import LLM, CallRecord, Completion, MemoryRecorder, parse_json_lenient
from .embed import Embedder, HashingEmbedder, make_embedder
from .models import EMBEDDED_MODELS, EmbeddedModel, model_path
from .registry import LLMRegistry
from .text import fit_to_budget, quote_untrusted

__all__ = [
    "EMBEDDED_MODELS",
    "LLM",
    "Backend",
    "CallRecord",
    "ChatRequest",
    "Completion",
    "EmbeddedModel",
    "Embedder",
    "HashingEmbedder",
    "LLMRegistry",
    "MemoryRecorder",
    "Message",
    "RawResponse",
    "fit_to_budget",
    "make_embedder",
    "model_path",
    "parse_json_lenient",
    "quote_untrusted",
]
