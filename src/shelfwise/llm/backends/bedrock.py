"""Amazon Bedrock through boto3's ``bedrock-runtime`` Converse API (one request shape for every model family).

Structured output uses a forced tool (``toolConfig.toolChoice = {"tool": {"name": ...}}``) whose
``inputSchema.json`` is the requested schema. Not every Bedrock model accepts a forced tool choice; when
one refuses (a ``ValidationException`` about tools), this instance falls back for good to the schema in the
system prompt. Credentials come from the usual AWS chain (env, profile, instance role); the region from
``roles.<role>.region`` or ``AWS_REGION``; ``base_url`` becomes boto3's ``endpoint_url`` (VPC endpoints,
tests). botocore's own retries are off; the client retries.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    NoCredentialsError,
    PartialCredentialsError,
    ReadTimeoutError,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)

from ...config import RoleConfig
from ...errors import ConfigError, LLMError
from ..base import Backend, ChatRequest, RawResponse
from ._remote import (
    TOOL_DESCRIPTION,
    TOOL_NAME,
    merge_turns,
    overloaded,
    rejected,
    split_system,
    timed_out,
    tool_schema,
    unavailable,
    unwrap_tool_input,
    with_schema_in_system,
)

__all__ = ["BedrockBackend"]

log = logging.getLogger("shelfwise.llm")

_TRANSIENT = {"ThrottlingException", "ServiceUnavailableException", "InternalServerException",
              "ModelNotReadyException", "TooManyRequestsException"}


class BedrockBackend(Backend):
    """``roles.<role>`` with ``backend = "bedrock"``: ``model`` (a Bedrock model or inference-profile id,
    e.g. ``anthropic.claude-3-5-haiku-20241022-v1:0``), ``region``, optional ``base_url``."""

    name = "bedrock"
    constrained_json = False
    native_async = False  # boto3 is synchronous; the base class runs execute in a thread
    retryable = ()  # throttling / 5xx become BackendUnavailableError, which the client retries

    def __init__(self, model: str, config: RoleConfig, **options: Any) -> None:
        super().__init__(model, config, **options)
        self.region = config.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        if not self.region:
            raise ConfigError(
                f"bedrock model {model!r} has no AWS region",
                fix="set roles.<role>.region (env SHELFWISE_ROLES__<ROLE>__REGION) or AWS_REGION",
            )
        self._session = boto3.session.Session()
        self._clients: dict[float, Any] = {}  # one client per read timeout (botocore sets it per client)
        self._lock = threading.Lock()
        self._forced_tool = bool(options.get("forced_tool", True))

    @property
    def url(self) -> str:
        return self.config.base_url or f"https://bedrock-runtime.{self.region}.amazonaws.com"

    @property
    def mode(self) -> str:
        return "tool" if self._forced_tool else "prompt"

    def execute(self, request: ChatRequest) -> RawResponse:
        client = self._client(request.timeout_s)
        while True:
            forced = self._forced_tool
            try:
                response = client.converse(**self._kwargs(request, forced))
            except ClientError as exc:
                if forced and request.json_schema is not None and _refuses_tools(exc):
                    with self._lock:
                        self._forced_tool = False
                    log.info("bedrock model %s refused a forced tool (%s); putting the schema in the "
                                "system prompt from now on", self.model, exc)
                    continue
                raise self._map_client_error(exc, request) from exc
            except (NoCredentialsError, PartialCredentialsError) as exc:
                raise ConfigError(
                    f"no usable AWS credentials for bedrock model {self.model!r}: {exc}",
                    fix="set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or run with an IAM role",
                ) from exc
            except ReadTimeoutError as exc:
                raise timed_out(self.name, self.url, self.model, request.timeout_s) from exc
            except BotoConnectionError as exc:  # EndpointConnectionError, ConnectTimeoutError, ...
                raise unavailable(self.name, self.url, self.model, exc) from exc
            except BotoCoreError as exc:
                raise LLMError(f"bedrock call to {self.url} (model {self.model!r}) failed: {exc}",
                               fix="check the region, endpoint and model id of the role") from exc
            return self._parse(response, request)

    # -- internals ----------------------------------------------------------------------------------
    def _client(self, timeout_s: float) -> Any:
        with self._lock:
            client = self._clients.get(timeout_s)
            if client is None:
                cfg = Config(
                    connect_timeout=min(10.0, timeout_s),
                    read_timeout=timeout_s,
                    retries={"total_max_attempts": 1, "mode": "standard"},
                )
                client = self._session.client("bedrock-runtime", region_name=self.region,
                                              endpoint_url=self.config.base_url, config=cfg)
                self._clients[timeout_s] = client
            return client

    def _kwargs(self, request: ChatRequest, forced: bool) -> dict[str, Any]:
        use_tool = request.json_schema is not None and forced
        messages = request.messages if use_tool or request.json_schema is None else with_schema_in_system(request)
        system, rest = split_system(messages)
        inference: dict[str, Any] = {"maxTokens": request.max_tokens, "temperature": min(request.temperature, 1.0)}
        if request.stop:
            inference["stopSequences"] = list(request.stop)
        kwargs: dict[str, Any] = {
            "modelId": self.model,
            "messages": [{"role": role, "content": [{"text": text}]} for role, text in merge_turns(rest)],
            "inferenceConfig": inference,
        }
        if system:
            kwargs["system"] = [{"text": system}]
        if use_tool:
            assert request.json_schema is not None
            kwargs["toolConfig"] = {
                "tools": [{"toolSpec": {"name": TOOL_NAME, "description": TOOL_DESCRIPTION,
                                        "inputSchema": {"json": tool_schema(request.json_schema)}}}],
                "toolChoice": {"tool": {"name": TOOL_NAME}},
            }
        return kwargs

    def _map_client_error(self, exc: ClientError, request: ChatRequest) -> LLMError:
        code = exc.response.get("Error", {}).get("Code", "ClientError")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        message = exc.response.get("Error", {}).get("Message", str(exc))
        if code == "ModelTimeoutException":
            return timed_out(self.name, self.url, self.model, request.timeout_s)
        if code in _TRANSIENT or status == 429 or status >= 500:
            return overloaded(self.name, self.url, self.model, code, message)
        return rejected(self.name, self.url, self.model, code, message)

    def _parse(self, response: dict[str, Any], request: ChatRequest) -> RawResponse:
        blocks = response.get("output", {}).get("message", {}).get("content", [])
        texts, tool_input = [], None
        for block in blocks:
            if "toolUse" in block and block["toolUse"].get("name") == TOOL_NAME:
                tool_input = unwrap_tool_input(request.json_schema, block["toolUse"].get("input"))
            elif "text" in block:
                texts.append(block["text"])
        text = json.dumps(tool_input, ensure_ascii=False) if tool_input is not None else "".join(texts)
        usage = response.get("usage", {})
        cached = usage.get("cacheReadInputTokens", 0) + usage.get("cacheWriteInputTokens", 0)
        return RawResponse(
            text=text,
            input_tokens=usage.get("inputTokens", 0) + cached,
            output_tokens=usage.get("outputTokens", 0),
            model=self.model,
            finish_reason=response.get("stopReason"),
            extra={"tool_use": tool_input is not None, "mode": self.mode,
                   "latency_ms": response.get("metrics", {}).get("latencyMs")},
        )


def _refuses_tools(exc: ClientError) -> bool:
    error = exc.response.get("Error", {})
    return error.get("Code") == "ValidationException" and "tool" in str(error.get("Message", "")).lower()
