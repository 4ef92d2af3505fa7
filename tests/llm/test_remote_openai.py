"""OpenAIBackend through the real ``openai`` SDK: against a real llama.cpp server running the embedded
0.5B model (slow), and against a local stub server for the fallback and error paths (fast)."""

import asyncio
import importlib
from pathlib import Path

import pytest
from pydantic import BaseModel, Field

from shelfwise.config import RoleConfig, Settings
from shelfwise.errors import BackendUnavailableError, LLMError, LLMTimeoutError
from shelfwise.llm import LLM, LLMRegistry, MemoryRecorder, Message
from shelfwise.llm.backends import backend_class
from shelfwise.llm.backends.openai import OpenAIBackend
from shelfwise.llm.text import quote_untrusted

from .conftest import llama_cpp_server
from .remote_stub import Reply, StubServer, closed_port_url


class Attrs(BaseModel):
    brand: str | None = Field(None, max_length=40)
    color: str | None = Field(None, max_length=24)
    material: str | None = Field(None, max_length=32)


def make_llm(url, mode=None, **cfg):
    config = RoleConfig(backend="openai", model="served-model", base_url=url, **cfg)
    backend = OpenAIBackend("served-model", config, **({"mode": mode} if mode else {}))
    rec = MemoryRecorder()
    return LLM("worker.generator", backend, config, recorder=rec, sleep=lambda s: None), rec


def chat(text, *, usage=(40, 8), finish="stop"):
    body = {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "served-model",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}]}
    if usage is not None:
        body["usage"] = {"prompt_tokens": usage[0], "completion_tokens": usage[1], "total_tokens": sum(usage)}
    return Reply(200, body)


def test_registered_under_its_name():
    assert backend_class("openai") is OpenAIBackend


@pytest.mark.parametrize("name", ["_remote", "openai", "anthropic", "bedrock"])
def test_backend_modules_export_what_they_name(name):
    module = importlib.import_module(f"shelfwise.llm.backends.{name}")
    assert module.__all__ and all(hasattr(module, n) for n in module.__all__)


# -- the real thing: llama-cpp-python's OpenAI-compatible server on loopback ------------------------------
@pytest.fixture(scope="module")
def llama_server(model_cache: Path, tmp_path_factory):
    pytest.importorskip("llama_cpp.server")
    from shelfwise.llm.models import model_path

    gguf = model_path("qwen2.5-coder-0.5b", model_cache)  # assembled and sha256-verified before use
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    with llama_cpp_server(gguf, log, "--n_ctx", "2048", "--n_threads", "2", wait_s=90) as url:
        yield url


@pytest.mark.slow
def test_structured_extraction_against_a_real_llama_cpp_server(llama_server):
    llm, rec = make_llm(llama_server, max_tokens=96, timeout_s=120)
    listing = "Osprey Talon 22 hiking backpack in red, made of ripstop nylon, 22 litres."
    messages = [Message(role="system", content="Extract the brand, color and material of the product "
                        "described in the listing data. Use null when the listing does not say."),
                Message(role="user", content=quote_untrusted(listing))]
    value, comp = llm.structured(messages, Attrs, prompt_id="extract.real")
    assert isinstance(value, Attrs) and value.brand and "osprey" in value.brand.lower()
    # llama-cpp-python refuses response_format json_schema; the backend steps down to its json_object +
    # schema grammar and keeps using it
    assert llm.backend.mode == "json_object"
    # tokens come from the server's usage block: the prompt holds the whole schema, so it is far longer
    # than the 4-chars-per-token estimate of the messages alone
    assert comp.input_tokens > 60 and 0 < comp.output_tokens <= 96
    assert [c.ok for c in rec.calls] == [True] and rec.calls[0].input_tokens == comp.input_tokens

    # the native async path hits the same server, with the mode remembered
    comp2 = asyncio.run(llm.acomplete("Reply with the single word: yes", max_tokens=8))
    assert comp2.text.strip() and comp2.output_tokens <= 8 and comp2.input_tokens > 5


def test_endpoint_down_names_the_url_and_the_fix():
    url = closed_port_url("/v1")
    llm, rec = make_llm(url, max_retries=1)
    with pytest.raises(BackendUnavailableError) as info:
        llm.structured("x", Attrs)
    assert url in str(info.value) and "start the server" in str(info.value) and "base_url" in str(info.value)
    assert [c.ok for c in rec.calls] == [False, False]  # retried once, both attempts recorded


# -- protocol and error paths against a stub server ----------------------------------------------------------
@pytest.fixture
def server():
    with StubServer() as srv:
        yield srv


def test_json_schema_response_format_and_usage(server):
    server.reply(chat('{"brand": "Acme", "color": "red"}', usage=(123, 9)))
    llm, _ = make_llm(f"{server.url}/v1", api_key="sk-test", max_tokens=64, price_in_per_mtok=2.0)
    value, comp = llm.structured("Acme red mug", Attrs)
    assert value == Attrs(brand="Acme", color="red") and (comp.input_tokens, comp.output_tokens) == (123, 9)
    assert comp.cost_usd == pytest.approx(123 * 2 / 1e6)
    [req] = server.requests
    assert req.path == "/v1/chat/completions" and req.headers["authorization"] == "Bearer sk-test"
    assert req.headers["x-stainless-retry-count"] == "0"  # the SDK does not retry behind our back
    fmt = req.body["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["schema"] == Attrs.model_json_schema()
    assert fmt["json_schema"]["name"] == "Attrs" and req.body["max_tokens"] == 64


def test_refused_json_schema_steps_down_once_and_is_remembered(server):
    server.reply(Reply(400, {"error": {"message": "response_format type json_schema is not supported"}}),
                 chat('{"brand": "Acme"}'), chat('{"brand": "Bolt"}'))
    llm, rec = make_llm(f"{server.url}/v1")
    assert llm.structured("Acme mug", Attrs)[0].brand == "Acme"
    assert llm.structured("Bolt mug", Attrs)[0].brand == "Bolt"
    first, second, third = (r.body for r in server.requests)
    assert first["response_format"]["type"] == "json_schema"
    for body in (second, third):
        assert body["response_format"] == {"type": "json_object", "schema": Attrs.model_json_schema()}
        assert body["messages"][0]["role"] == "system" and "JSON schema" in body["messages"][0]["content"]
    assert llm.backend.mode == "json_object" and all(c.ok for c in rec.calls)


def test_prompt_mode_sends_no_response_format(server):
    server.reply(chat('{"brand": "Acme"}', usage=None))
    llm, _ = make_llm(f"{server.url}/v1", mode="prompt")
    value, comp = llm.structured([Message(role="system", content="Extract."), Message(role="user", content="Acme")],
                                 Attrs)
    body = server.requests[0].body
    assert "response_format" not in body and body["messages"][0]["content"].startswith("Extract.")
    assert value.brand == "Acme" and comp.input_tokens > 0  # estimated when the server sends no usage


def test_server_errors_and_rate_limits_are_retried(server):
    server.reply(Reply(503, {"error": {"message": "loading model"}}), Reply(429, {"error": {"message": "slow down"}}),
                 chat('{"brand": "Acme"}'))
    llm, rec = make_llm(f"{server.url}/v1", max_retries=2)
    value, _comp = llm.structured("x", Attrs)
    assert value.brand == "Acme" and len(server.requests) == 3
    assert [c.ok for c in rec.calls] == [False, False, True]
    assert "503" in rec.calls[0].error and "429" in rec.calls[1].error


def test_a_role_configured_for_openai_is_served_through_the_registry(server, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    server.reply(chat("pong"))
    settings = Settings(roles={"worker.evaluator": {"backend": "openai", "model": "qwen2.5-coder:0.5b",
                                                    "base_url": f"{server.url}/v1", "timeout_s": 5}})
    registry = LLMRegistry(settings)
    llm = registry.for_role("worker.evaluator")
    assert isinstance(llm.backend, OpenAIBackend) and llm.complete("ping").text == "pong"
    assert server.requests[0].body["model"] == "qwen2.5-coder:0.5b"
    assert server.requests[0].headers["authorization"] == "Bearer not-needed"  # local servers need no key
    registry.close()


def test_reasoning_model_parameters_are_adapted_once(server):
    server.reply(
        Reply(400, {"error": {"message": "Unsupported parameter: 'max_tokens' is not supported with this model. "
                              "Use 'max_completion_tokens' instead.", "param": "max_tokens"}}),
        Reply(400, {"error": {"message": "Unsupported value: 'temperature' does not support 0.0 with this model.",
                              "param": "temperature"}}),
        chat("ok"), chat("again"))
    llm, rec = make_llm(f"{server.url}/v1", max_tokens=50)
    assert llm.complete("x").text == "ok" and llm.complete("y").text == "again"
    last = server.requests[-1].body
    assert last["max_completion_tokens"] == 50 and "max_tokens" not in last and "temperature" not in last
    assert len(server.requests) == 4 and all(c.ok for c in rec.calls)


def test_unknown_model_is_not_retried(server):
    server.reply(Reply(404, {"error": {"message": "model 'served-model' not found"}}))
    llm, _ = make_llm(f"{server.url}/v1", max_retries=3)
    with pytest.raises(LLMError, match="roles.<role>.model") as info:
        llm.complete("x")
    assert not isinstance(info.value, BackendUnavailableError) and len(server.requests) == 1


def test_timeout_is_a_typed_error(server):
    server.reply(Reply(200, {}, delay_s=1.5))
    llm, _ = make_llm(f"{server.url}/v1", timeout_s=0.3, max_retries=0)
    with pytest.raises(LLMTimeoutError, match="0.3"):
        llm.complete("x")


def test_async_calls_run_concurrently_on_the_native_client(server):
    server.reply(chat("a"), chat("b"))
    llm, _ = make_llm(f"{server.url}/v1", concurrency=2)

    async def both():
        return await asyncio.gather(llm.acomplete("one"), llm.acomplete("two"))

    assert sorted(c.text for c in asyncio.run(both())) == ["a", "b"] and len(server.requests) == 2


NO_MESSAGE = {"id": "x", "object": "chat.completion", "created": 0, "model": "m",
              "choices": [{"index": 0, "finish_reason": "stop"}]}


@pytest.mark.parametrize("reply", [
    Reply(200, raw=b"this is not json at all"),
    Reply(200, raw=b""),
    Reply(200, raw=b"<html>hello</html>", content_type="text/html"),
    Reply(200, NO_MESSAGE),
    Reply(200, {"choices": "x"}),
], ids=["not-json", "empty", "html", "no-message", "choices-not-a-list"])
def test_a_malformed_200_is_an_llm_error_recorded_and_not_retried(server, reply):
    server.reply(reply)
    llm, rec = make_llm(f"{server.url}/v1", max_retries=2)
    with pytest.raises(LLMError, match="unreadable answer") as info:
        llm.complete("hi")
    assert server.url in str(info.value) and "OpenAI-compatible /v1" in str(info.value)
    assert [c.ok for c in rec.calls] == [False] and len(server.requests) == 1
    server.reply(reply)
    with pytest.raises(LLMError, match="unreadable answer"):  # the native async path maps it the same way
        asyncio.run(llm.acomplete("hi again"))
