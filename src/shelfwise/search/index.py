"""The persistent search index under ``settings.home/index/``: a row table, per-field BM25, dense vectors.

Rows are append-only: updating a product tombstones its old row and appends a new one; deleting tombstones
it. ``save()`` writes each file to a temporary name and renames it, and writes the manifest last, so a crash
mid-save leaves the previous index readable. Anything missing or inconsistent on load raises
``IndexStateError`` naming the rebuild command.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..errors import IndexStateError
from .config import SearchConfig
from .dense import DenseIndex
from .documents import ProductDoc
from .lexical import LexicalIndex

__all__ = ["FORMAT_VERSION", "REBUILD_HINT", "Embedder", "SearchIndex"]

REBUILD_HINT = "run `shelfwise index --rebuild`"
FORMAT_VERSION = 2


class Embedder(Protocol):
    dim: int
    name: str

    def embed(self, texts: list[str]) -> np.ndarray: ...


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


class SearchIndex:
    def __init__(self, docs: list[ProductDoc], lexical: LexicalIndex, dense: DenseIndex, *, alive: np.ndarray,
                 embedder_name: str, config: SearchConfig) -> None:
        self.docs, self.lexical, self.dense = docs, lexical, dense
        self.alive = alive
        self.embedder_name = embedder_name
        self.config = config
        self.row_of = {d.id: i for i, d in enumerate(docs) if alive[i]}
        self._refresh_arrays()

    def _refresh_arrays(self) -> None:
        self.ids = np.array([d.id for d in self.docs], dtype=object)
        self.popularity = np.array([d.popularity for d in self.docs], dtype=np.float32)
        self.rating = np.array([d.rating for d in self.docs], dtype=np.float32)

    # -- building -----------------------------------------------------------------------------------
    @classmethod
    def build(cls, docs: Sequence[ProductDoc], embedder: Embedder, config: SearchConfig | None = None, *,
              vectors: np.ndarray | None = None, batch: int = 256) -> SearchIndex:
        """Index ``docs`` from scratch. ``vectors`` may be passed in (e.g. a cached embedding run)."""
        docs = list(docs)
        tokens = [d.field_tokens() for d in docs]
        if vectors is None:
            parts = [embedder.embed([d.dense_text() for d in docs[i : i + batch]]) for i in range(0, len(docs), batch)]
            vectors = np.vstack(parts) if parts else np.zeros((0, embedder.dim), dtype=np.float32)
        config = config or SearchConfig()
        return cls(docs, LexicalIndex(tokens), DenseIndex(embedder.dim, vectors, build_threads=config.dense_build_threads),
                   alive=np.ones(len(docs), dtype=bool), embedder_name=embedder.name, config=config)

    # -- incremental changes ------------------------------------------------------------------------
    def upsert(self, doc: ProductDoc, embedder: Embedder) -> int:
        """Add or replace one product; visible to the next query at once."""
        self.delete(doc.id, missing_ok=True)
        vector = embedder.embed([doc.dense_text()])[0]
        row = self.lexical.append(doc.field_tokens())
        self.dense.append(vector)
        self.docs.append(doc)
        self.alive = np.append(self.alive, True)
        self.row_of[doc.id] = row
        self._refresh_arrays()
        if self.lexical.needs_merge(self.config.max_delta):
            self.compact()
        return row

    def delete(self, product_id: str, *, missing_ok: bool = False) -> bool:
        row = self.row_of.pop(product_id, None)
        if row is None:
            if missing_ok:
                return False
            from ..errors import NotFoundError

            raise NotFoundError("indexed product", product_id, fix="index it first (`shelfwise index`)")
        self.alive[row] = False
        self.dense.remove(row)
        return True

    def compact(self) -> None:
        """Drop tombstones and merge the delta into the main BM25 index (renumbers rows)."""
        keep = np.flatnonzero(self.alive)
        docs = [self.docs[i] for i in keep]
        tokens = [self.lexical.rows[i] for i in keep]
        self.docs, self.lexical = docs, LexicalIndex(tokens)
        self.dense = DenseIndex(self.dense.dim, self.dense.vectors[keep], build_threads=self.config.dense_build_threads)
        self.alive = np.ones(len(docs), dtype=bool)
        self.row_of = {d.id: i for i, d in enumerate(docs)}
        self._refresh_arrays()
        self._compacted = True

    def __len__(self) -> int:
        return len(self.row_of)

    # -- persistence --------------------------------------------------------------------------------
    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        # The main BM25 segment only changes on a full build or a compaction; rewrite it then.
        if getattr(self, "_compacted", True) or not (directory / "bm25_title").exists():
            for path in directory.glob("bm25_*"):
                shutil.rmtree(path)
            self.lexical.save_main(directory)
            self._compacted = False
        state = {"docs": self.docs, "tokens": self.lexical.rows, "main_n": self.lexical.main_n, "alive": self.alive}
        _atomic_write(directory / "rows.pkl", pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL))
        self.dense.save(directory)
        manifest = {"format": FORMAT_VERSION, "rows": len(self.docs), "live": len(self), "dim": self.dense.dim,
                    "embedder": self.embedder_name, "main_n": self.lexical.main_n, "saved_at": time.time()}
        _atomic_write(directory / "manifest.json", json.dumps(manifest, indent=1).encode())

    @classmethod
    def load(cls, directory: Path, config: SearchConfig | None = None, *, embedder_name: str | None = None) -> SearchIndex:
        manifest_path = directory / "manifest.json"
        if not manifest_path.exists():
            raise IndexStateError(f"no search index at {directory}", fix=REBUILD_HINT)
        try:
            manifest: dict[str, Any] = json.loads(manifest_path.read_text())
            if manifest.get("format") != FORMAT_VERSION:
                raise ValueError(f"index format {manifest.get('format')} is not {FORMAT_VERSION}")
            state = pickle.loads((directory / "rows.pkl").read_bytes())
            docs, tokens, alive = state["docs"], state["tokens"], np.asarray(state["alive"], dtype=bool)
            if not (len(docs) == len(tokens) == len(alive) == manifest["rows"]):
                raise ValueError("row table, tokens and manifest disagree on the number of rows")
            dense = DenseIndex.load(directory, int(manifest["dim"]))
            if len(dense.vectors) != len(docs):
                raise ValueError(f"{len(dense.vectors)} vectors for {len(docs)} rows")
            lexical = LexicalIndex.load(directory, tokens, int(state["main_n"]))
        except IndexStateError:
            raise
        except Exception as exc:  # any unreadable, truncated or mismatched file
            raise IndexStateError(f"search index at {directory} is corrupt ({type(exc).__name__}: {exc})",
                                  fix=REBUILD_HINT) from exc
        if embedder_name is not None and manifest["embedder"] != embedder_name:
            raise IndexStateError(
                f"index was built with embedder {manifest['embedder']!r}, settings use {embedder_name!r}",
                fix=REBUILD_HINT)
        index = cls(docs, lexical, dense, alive=alive, embedder_name=manifest["embedder"],
                    config=config or SearchConfig())
        index._compacted = False
        return index
