"""Dense vectors: a usearch HNSW index for retrieval, and the raw matrix for exact per-candidate features."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from usearch.index import Index

from . import _native  # noqa: F401  (must precede usearch; see the module)

__all__ = ["DenseIndex"]


# Up to this many rows a query is answered by one exact matrix-vector product; beyond, the usearch HNSW
# graph. On the 6,764 ESCI products (384-d) the product costs ~2.5 ms and the graph ~1.2-1.8 ms (loaded
# core) while finding 97 % of the exact top 100, so the graph wins early; tiny catalogs stay exact.
EXACT_MAX_ROWS = 2_000


class DenseIndex:
    """Keys are row numbers of the search index. Removed rows stay in the matrix (masked by ``live``)."""

    def __init__(self, dim: int, vectors: np.ndarray | None = None, *, index: Index | None = None,
                 exact_max_rows: int = EXACT_MAX_ROWS, build_threads: int = 1) -> None:
        self.dim = dim
        self.vectors = np.zeros((0, dim), dtype=np.float32) if vectors is None else vectors.astype(np.float32)
        self.exact_max_rows = exact_max_rows
        self._buffer: np.ndarray | None = None  # spare room for appended vectors (see ``append``)
        if index is None:
            index = Index(ndim=dim, metric="ip", dtype="f32", connectivity=16, expansion_add=128,
                          expansion_search=96)
            if len(self.vectors):
                # Threads insert nodes in racing order, so a multi-threaded build gives a different graph (and
                # different approximate neighbours for ~60 % of ESCI queries) in every run. One thread: same
                # vectors -> same graph; it costs ~1.3 s for 6,764 x 384-d here. 0 = all cores.
                index.add(np.arange(len(self.vectors), dtype=np.uint64), self.vectors, threads=build_threads)
        self.index = index
        self.live = np.array([int(r) in index for r in range(len(self.vectors))], dtype=bool) \
            if len(index) != len(self.vectors) else np.ones(len(self.vectors), dtype=bool)

    def append(self, vector: np.ndarray) -> int:
        row = len(self.vectors)
        # ``vectors`` is a view of a buffer with room to spare: an append copies nothing, instead of the whole
        # matrix (hundreds of MB for a large catalog). It grows by an eighth, not double: the spare room is
        # resident memory in every worker.
        buffer = self._buffer
        if buffer is None or self.vectors.base is not buffer or len(buffer) <= row:
            buffer = np.empty((row + max(64, row // 8), self.dim), dtype=np.float32)
            buffer[:row] = self.vectors
        buffer[row] = vector.astype(np.float32)
        self._buffer, self.vectors = buffer, buffer[: row + 1]
        self.index.add(np.uint64(row), vector.astype(np.float32))
        self.live = np.append(self.live, True)
        return row

    def remove(self, row: int) -> None:
        if row in self.index:
            self.index.remove(np.uint64(row))
        if row < len(self.live):
            self.live[row] = False

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(rows, cosine similarities), best first; L2-normalised vectors make inner product the cosine."""
        if len(self.index) == 0 or k <= 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        if len(self.vectors) <= self.exact_max_rows:
            sims = self.vectors @ query.astype(np.float32)
            live = int(self.live.sum())
            if live < len(sims):
                sims[~self.live] = -np.inf
            k = min(k, live)
            if k == 0:
                return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
            top = np.argpartition(-sims, k - 1)[:k] if k < len(sims) else np.arange(len(sims))
            top = top[np.argsort(-sims[top], kind="stable")]
            return top.astype(np.int64), sims[top].astype(np.float32)
        found = self.index.search(query.astype(np.float32), min(k, len(self.index)))
        return found.keys.astype(np.int64), (1.0 - found.distances).astype(np.float32)

    def similarity(self, query: np.ndarray) -> np.ndarray:
        """Exact cosine with every row: one matrix-vector product, cheap for tens of thousands of rows."""
        return self.vectors @ query.astype(np.float32)

    def save(self, vectors_path: Path, graph_path: Path) -> None:
        np.save(vectors_path, self.vectors)
        self.index.save(str(graph_path))

    @classmethod
    def load(cls, vectors_path: Path, graph_path: Path, dim: int) -> DenseIndex:
        vectors = np.load(vectors_path)
        if vectors.ndim != 2 or vectors.shape[1] != dim:
            raise ValueError(f"vectors have shape {vectors.shape}, expected (n, {dim})")
        index = Index.restore(str(graph_path))
        if index is None or index.ndim != dim:
            raise ValueError(f"{graph_path.name} is not a usearch index of the expected dimension")
        return cls(dim, vectors, index=index)
