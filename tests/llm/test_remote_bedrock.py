"""BedrockBackend through real boto3 / botocore (SigV4 signing, Converse serialisation and error parsing)
against a local server that checks the requests and answers in the Converse wire format."""

import pytest
from pydantic import BaseModel, Field

from shelfwise.config import RoleConfig
from shelfwise.errors import BackendUnavailableError, ConfigError, LLMError, LLMTimeoutError
from shelfwise.llm import LLM, MemoryRecorder, Message
from shelfwise.llm.backends import backend_class
from shelfwise.llm.backends._remote import TOOL_NAME
from shelfwise.llm.backends.bedrock import BedrockBackend

from .remote_stub import Reply, StubServer, closed_port_url

MODEL = "anthropic.claude-3-5-haiku-20241022-v1:0"


class Attrs(BaseModel):
    brand: str | None = Field(None, max_length=64)
    color: str | None = Field(None, max_length=32)


@pytest.fixture(autouse=True)
def aws_env(monkeypatch, tmp_path):
    # dummy credentials from the ordinary env chain; nothing from the developer's ~/.aws or an IMDS
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDSHELFWISETEST")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-a-real-secret")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
def server():
    with StubServer() as srv:
        yield srv


def converse(content, *, stop="end_turn", tokens=(30, 9)):
    return Reply(200, {"output": {"message": {"role": "assistant", "content": content}}, "stopReason": stop,
                       "usage": {"inputTokens": tokens[0], "outputTokens": tokens[1], "totalTokens": sum(tokens)},
                       "metrics": {"latencyMs": 123}})


def tool_use(data, **kw):
    return converse([{"toolUse": {"toolUseId": "tooluse_1", "name": TOOL_NAME, "input": data}}], stop="tool_use", **kw)


def aws_error(status, code, message="boom"):
    return Reply(status, {"message": message}, headers={"x-amzn-ErrorType": f"{code}:http://internal.amazon.com/"})


def make_llm(url, **cfg):
    cfg.setdefault("region", "eu-west-1")
    config = RoleConfig(backend="bedrock", model=MODEL, base_url=url, **cfg)
    rec = MemoryRecorder()
    return LLM("supervisor", BedrockBackend(MODEL, config), config, recorder=rec, sleep=lambda s: None), rec


def test_registered_under_its_name():
    assert backend_class("bedrock") is BedrockBackend


def test_structured_call_is_signed_and_uses_a_forced_tool(server):
    server.reply(tool_use({"brand": "Acme", "color": "red"}, tokens=(44, 11)))
    llm, rec = make_llm(server.url, max_tokens=99, price_in_per_mtok=1.0, price_out_per_mtok=5.0)
    value, comp = llm.structured([Message(role="system", content="Extract attributes."),
                                  Message(role="user", content="Acme red mug")], Attrs)
    assert value == Attrs(brand="Acme", color="red")
    assert (comp.input_tokens, comp.output_tokens) == (44, 11)
    assert comp.cost_usd == pytest.approx((44 * 1 + 11 * 5) / 1e6) and rec.calls[0].backend == "bedrock"
    [req] = server.requests
    assert req.method == "POST" and req.path == "/model/" + MODEL.replace(":", "%3A") + "/converse"
    auth = req.headers["authorization"]
    assert auth.startswith("AWS4-HMAC-SHA256 Credential=AKIDSHELFWISETEST/")
    assert "/eu-west-1/bedrock/aws4_request" in auth and "Signature=" in auth and req.headers["x-amz-date"]
    body = req.body
    assert body["system"] == [{"text": "Extract attributes."}]
    assert body["messages"] == [{"role": "user", "content": [{"text": "Acme red mug"}]}]
    assert body["inferenceConfig"] == {"maxTokens": 99, "temperature": 0.0}
    [tool] = body["toolConfig"]["tools"]
    assert tool["toolSpec"]["name"] == TOOL_NAME
    assert tool["toolSpec"]["inputSchema"] == {"json": Attrs.model_json_schema()}
    assert body["toolConfig"]["toolChoice"] == {"tool": {"name": TOOL_NAME}}


def test_plain_text_call_has_no_tool_config(server):
    server.reply(converse([{"text": "Hello "}, {"text": "there"}]))
    llm, _ = make_llm(server.url)
    comp = llm.complete("Hi", stop=["END"])
    assert comp.text == "Hello there" and comp.output_tokens == 9
    body = server.requests[0].body
    assert "toolConfig" not in body and "system" not in body
    assert body["inferenceConfig"]["stopSequences"] == ["END"]


def test_model_refusing_a_forced_tool_falls_back_to_the_prompt_once(server):
    server.reply(aws_error(400, "ValidationException", "This model doesn't support the toolConfig.toolChoice.tool field"),
                 converse([{"text": '{"brand": "Acme"}'}]), converse([{"text": '{"brand": "Bolt"}'}]))
    llm, _ = make_llm(server.url)
    assert llm.structured("Acme mug", Attrs)[0].brand == "Acme"
    assert llm.structured("Bolt mug", Attrs)[0].brand == "Bolt"
    first, second, third = (r.body for r in server.requests)
    assert "toolConfig" in first and "toolConfig" not in second and "toolConfig" not in third
    assert '"brand"' in second["system"][0]["text"] and llm.backend.mode == "prompt"


def test_invalid_tool_input_goes_through_the_clients_retry(server):
    server.reply(tool_use({"brand": ["not", "a", "string"]}), tool_use({"brand": "Acme"}))
    llm, _ = make_llm(server.url)
    value, comp = llm.structured("Acme mug", Attrs)
    assert value.brand == "Acme" and comp.attempts == 2
    roles = [m["role"] for m in server.requests[1].body["messages"]]
    assert roles == ["user", "assistant", "user"]


def test_throttling_is_retried(server):
    server.reply(aws_error(429, "ThrottlingException", "Too many requests"), tool_use({"brand": "Acme"}))
    llm, rec = make_llm(server.url, max_retries=2)
    assert llm.structured("x", Attrs)[0].brand == "Acme"
    assert [c.ok for c in rec.calls] == [False, True] and "ThrottlingException" in rec.calls[0].error
    # botocore's own retries are off: each attempt is one request, counted by our client
    assert len(server.requests) == 2 and server.requests[0].headers["amz-sdk-request"].endswith("max=1")


def test_server_error_then_success_is_retried(server):
    server.reply(aws_error(500, "InternalServerException"), tool_use({"brand": "Acme"}))
    llm, _ = make_llm(server.url)
    assert llm.structured("x", Attrs)[0].brand == "Acme" and len(server.requests) == 2


def test_persistent_throttling_ends_in_a_typed_error(server):
    server.reply(*[aws_error(429, "ThrottlingException", "Too many requests")] * 3)
    llm, _ = make_llm(server.url, max_retries=2)
    with pytest.raises(BackendUnavailableError, match="ThrottlingException"):
        llm.complete("x")
    assert len(server.requests) == 3


def test_access_denied_is_not_retried_and_says_how_to_fix(server):
    server.reply(aws_error(403, "AccessDeniedException", "not authorized to invoke model"))
    llm, _ = make_llm(server.url, max_retries=3)
    with pytest.raises(LLMError, match="credentials") as info:
        llm.complete("x")
    assert not isinstance(info.value, BackendUnavailableError) and len(server.requests) == 1


def test_read_timeout_is_a_typed_error(server):
    server.reply(Reply(200, {}, delay_s=1.5))
    llm, _ = make_llm(server.url, timeout_s=0.3, max_retries=0)
    with pytest.raises(LLMTimeoutError, match="0.3"):
        llm.complete("x")


def test_endpoint_down_names_the_url_and_the_fix():
    url = closed_port_url()
    llm, _ = make_llm(url, max_retries=0)
    with pytest.raises(BackendUnavailableError) as info:
        llm.complete("x")
    assert url in str(info.value) and "base_url" in str(info.value)


def test_missing_region_is_a_config_error():
    with pytest.raises(ConfigError, match="region"):
        BedrockBackend(MODEL, RoleConfig(backend="bedrock", model=MODEL))


def test_missing_credentials_is_a_config_error(server, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    llm, _ = make_llm(server.url)
    with pytest.raises(ConfigError, match="AWS_ACCESS_KEY_ID"):
        llm.complete("x")
    assert server.requests == []
