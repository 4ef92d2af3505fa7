"""The embedded llama.cpp backend. Grammar conversion is checked fast; everything that decodes runs the
real models (``slow``)."""

from __future__ import annotations

import enum
import json
from typing import Literal

import pytest
from pydantic import BaseModel, Field

from shelfwise.config import RoleConfig
from shelfwise.errors import LLMTimeoutError, UnknownNameError
from shelfwise.llm import LLM, MemoryRecorder, Message
from shelfwise.llm.base import ChatRequest
from shelfwise.llm.text import quote_untrusted

pytest.importorskip("llama_cpp")
from shelfwise.llm.backends.local import LocalBackend, grammar_for_schema


class Colour(str, enum.Enum):
    black = "black"
    white = "white"
    red = "red"
    other = "other"


class Shoe(BaseModel):
    brand: str | None = Field(None, max_length=24)
    colour: Colour | None = None
    gender: Literal["men", "women", "unisex"] | None = None
    size: str | None = Field(None, max_length=12)


class Blurb(BaseModel):
    blurb: str = Field(max_length=15)
    kind: Literal["shoe", "coffee", "tent"]


def test_grammar_covers_max_length_enums_and_nullable():
    grammar = grammar_for_schema(Shoe.model_json_schema())._grammar
    assert '"\\"black\\""' in grammar and '"\\"unisex\\""' in grammar  # enum members are literals
    assert "null" in grammar
    brand_rule = next(line for line in grammar.splitlines() if line.startswith("brand-0 ::="))
    assert brand_rule.count("char") == 24  # maxLength=24 -> at most 24 characters


def test_unknown_embedded_model_lists_valid_names():
    with pytest.raises(UnknownNameError, match="qwen2.5-coder-0.5b"):
        LocalBackend("llama-70b", RoleConfig())


@pytest.mark.slow
def test_real_structured_extraction_is_valid_and_accounted(local_05b):
    rec = MemoryRecorder()
    llm = LLM("worker.generator", local_05b, recorder=rec)
    title = "Nike Men's Air Zoom Pegasus 39 Running Shoe, Black/White, Size 10"
    value, comp = llm.structured(
        [Message(role="system", content="Extract the shoe's attributes from the listing; null if not stated."),
         Message(role="user", content=quote_untrusted(title))], Shoe, prompt_id="test.extract")
    assert isinstance(value, Shoe) and value.brand and "nike" in value.brand.lower()
    assert comp.input_tokens > 20 and comp.output_tokens > 0 and comp.attempts == 1
    [call] = rec.calls
    assert call.ok and call.backend == "local" and call.input_tokens == comp.input_tokens


@pytest.mark.slow
def test_real_decoding_respects_max_length_and_enum(local_05b):
    request = ChatRequest(
        messages=(Message(role="user", content="Write a long enthusiastic blurb about a two-person camping "
                          "tent with many details, then say what kind of product it is."),),
        json_schema=Blurb.model_json_schema(), max_tokens=96)
    raw = local_05b.execute(request)
    data = json.loads(raw.text)  # strict: constrained decoding needs no repair
    assert len(data["blurb"]) <= 15 and data["kind"] in ("shoe", "coffee", "tent")
    assert raw.finish_reason == "stop" and raw.output_tokens > 0


@pytest.mark.slow
def test_real_timeout_and_token_count(local_05b):
    request = ChatRequest(messages=(Message(role="user", content="Count from 1 to 500."),), max_tokens=400,
                          timeout_s=0.3)
    with pytest.raises(LLMTimeoutError, match="timeout_s"):
        local_05b.execute(request)
    # the instance still works after an aborted generation
    raw = local_05b.execute(ChatRequest(messages=(Message(role="user", content="Say OK."),), max_tokens=4))
    assert raw.text and raw.output_tokens > 0
    n = local_05b.count_tokens("stainless steel French press")
    assert 3 <= n <= 10 and n != len("stainless steel French press") // 4


@pytest.mark.slow
def test_real_supervisor_model_loads_and_answers(model_cache):
    class Verdict(BaseModel):
        correct: bool
        reason: str = Field(max_length=60)

    backend = LocalBackend("qwen2.5-coder-1.5b", RoleConfig(max_tokens=48, max_retries=0, context_tokens=1024, timeout_s=600),
                           threads=2, cache_dir=model_cache)
    try:
        value, comp = LLM("supervisor", backend).structured(
            "A listing titled 'Hydro Flask 32 oz Water Bottle' was given the attribute colour=32 oz. "
            "Is that attribute value correct?", Verdict, prompt_id="test.supervise")
        assert value.correct is False and comp.output_tokens > 0
    finally:
        backend.close()


def test_prompt_states_keep_one_logits_row_and_their_capacity():
    import numpy as np
    from llama_cpp.llama import LlamaState

    from shelfwise.llm.backends.local import PromptStates

    def state(tag: int) -> LlamaState:  # the shape llama.cpp hands over: n_batch x vocab logits, KV bytes
        return LlamaState(np.array([tag], dtype=np.intc), np.full((512, 1000), float(tag), np.float32), 1,
                          b"k" * 1000, 1000, 0)

    cache = PromptStates(capacity_bytes=2500)
    for tag in range(3):
        cache[(tag, 1, 2)] = state(tag)
    assert len(cache.cache_state) == 2 and (0, 1, 2) not in cache  # the oldest went when KV passed 2,500 bytes
    kept = cache[(2, 1, 2, 99)]  # longest stored prefix of a longer prompt
    assert kept.scores.shape == (1, 1000) and kept.scores[0, 0] == 2.0  # ~300 MB upstream, 4 KB here


@pytest.mark.slow
def test_prompt_states_resume_each_roles_prefix_with_the_same_answers(model_cache):
    """Two roles alternate on one model: with the states cache each call resumes its own prefix, and
    greedy answers match a model without it."""
    prefixes = ["You extract product attributes. Reply with the brand only. " * 20,
                "You check extracted values critically. Reply yes or no. " * 20]
    def answers(cache_mb: int) -> list[str]:
        backend = LocalBackend("qwen2.5-coder-0.5b", RoleConfig(max_tokens=6, max_retries=0, context_tokens=2048),
                               threads=2, cache_dir=model_cache, prompt_cache_mb=cache_mb)
        try:
            out = [backend.execute(ChatRequest(messages=(Message(role="user", content=f"{p}Listing {i}: Lavazza "
                                                                   f"espresso {i} kg"),), max_tokens=6)).text
                   for i in range(3) for p in prefixes]
            if cache_mb:
                assert backend._llama is not None and len(backend._llama.cache.cache_state) >= 4
            return out
        finally:
            backend.close()
    assert answers(64) == answers(0)
