"""The persistent search index under ``settings.home/index/``: a row table, per-field BM25, dense vectors.

Rows are append-only: updating a product tombstones its old row and appends a new one; deleting tombstones
it. ``save()`` writes a new generation of files under fresh names, then atomically replaces the manifest that
names them, then deletes the previous generation: a crash mid-save leaves the previous index readable. Anything missing or inconsistent on load raises
``IndexStateError`` naming the rebuild command.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..errors import IndexStateError
from .config import SearchConfig
from .dense import DenseIndex
from .documents import ProductDoc
from .lexical import LexicalIndex
from .locking import ensure_directory

__all__ = ["FORMAT_VERSION", "REBUILD_HINT", "Embedder", "SearchIndex"]

REBUILD_HINT = "run `shelfwise index --rebuild`"
FORMAT_VERSION = 3  # 3: generation-named files listed in the manifest; 2 (fixed names) is still read


class Embedder(Protocol):
    dim: int
    name: str

    def embed(self, texts: list[str]) -> np.ndarray: ...


# Files of a format-2 index (one fixed name each, rewritten in place); still read, never written.
_FORMAT_2_FILES = {"rows": "rows.pkl", "vectors": "vectors.npy", "dense": "dense.usearch", "bm25": "."}
# What a save may leave behind: generations of these, and format 2's fixed names.
_INDEX_FILES = ("rows-*.pkl", "vectors-*.npy", "dense-*.usearch", "bm25-*", "rows.pkl", "vectors.npy",
                "dense.usearch", "bm25_*")


def _fsync_tree(path: Path) -> None:
    """Flush a file (or every file of a directory) to disk, so the manifest never names unwritten data."""
    for file in [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]:
        fd = os.open(file, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _remove_unreferenced(directory: Path, keep: set[str]) -> None:
    for pattern in _INDEX_FILES:
        for path in directory.glob(pattern):
            if path.name in keep:
                continue
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)


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
        """Write a new generation of files next to the current one, then the manifest that names them, then
        delete the files no manifest names. A crash before the manifest's rename leaves the previous index
        (and its manifest) untouched; the next save removes the orphans."""
        ensure_directory(directory)
        gen = uuid.uuid4().hex[:12]
        files = {"rows": f"rows-{gen}.pkl", "vectors": f"vectors-{gen}.npy", "dense": f"dense-{gen}.usearch",
                 "bm25": getattr(self, "_bm25_dir", None)}
        # The main BM25 segment only changes on a full build or a compaction; write a new one then.
        if getattr(self, "_compacted", True) or not files["bm25"] or not (directory / files["bm25"]).is_dir():
            files["bm25"] = f"bm25-{gen}"
            (directory / files["bm25"]).mkdir()
            self.lexical.save_main(directory / files["bm25"])
            _fsync_tree(directory / files["bm25"])
        state = {"docs": self.docs, "tokens": self.lexical.rows, "main_n": self.lexical.main_n, "alive": self.alive}
        (directory / files["rows"]).write_bytes(pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL))
        self.dense.save(directory / files["vectors"], directory / files["dense"])
        for key in ("rows", "vectors", "dense"):
            _fsync_tree(directory / files[key])
        manifest = {"format": FORMAT_VERSION, "rows": len(self.docs), "live": len(self), "dim": self.dense.dim,
                    "embedder": self.embedder_name, "main_n": self.lexical.main_n, "files": files,
                    "saved_at": time.time()}
        _atomic_write(directory / "manifest.json", json.dumps(manifest, indent=1).encode())
        self._compacted, self._bm25_dir = False, files["bm25"]
        _remove_unreferenced(directory, set(files.values()))

    @classmethod
    def load(cls, directory: Path, config: SearchConfig | None = None, *, embedder_name: str | None = None) -> SearchIndex:
        manifest_path = directory / "manifest.json"
        if not manifest_path.exists():
            raise IndexStateError(f"no search index at {directory}", fix=REBUILD_HINT)
        try:
            manifest: dict[str, Any] = json.loads(manifest_path.read_text())
            if not isinstance(manifest, dict):
                raise TypeError("manifest.json is not an object")
            if manifest.get("format") not in (2, FORMAT_VERSION):
                raise ValueError(f"index format {manifest.get('format')} is not {FORMAT_VERSION}")
            files = manifest.get("files", _FORMAT_2_FILES)
            state = pickle.loads((directory / files["rows"]).read_bytes())
            docs, tokens, alive = state["docs"], state["tokens"], np.asarray(state["alive"], dtype=bool)
            if not (len(docs) == len(tokens) == len(alive) == manifest["rows"]):
                raise ValueError("row table, tokens and manifest disagree on the number of rows")
            dense = DenseIndex.load(directory / files["vectors"], directory / files["dense"], int(manifest["dim"]))
            if len(dense.vectors) != len(docs):
                raise ValueError(f"{len(dense.vectors)} vectors for {len(docs)} rows")
            lexical = LexicalIndex.load(directory / files["bm25"], tokens, int(state["main_n"]))
            built_with = str(manifest["embedder"])
        except IndexStateError:
            raise
        except Exception as exc:  # any unreadable, truncated or mismatched file
            raise IndexStateError(f"search index at {directory} is corrupt ({type(exc).__name__}: {exc})",
                                  fix=REBUILD_HINT) from exc
        if embedder_name is not None and built_with != embedder_name:
            raise IndexStateError(f"index was built with embedder {built_with!r}, settings use {embedder_name!r}",
                                  fix=REBUILD_HINT)
        index = cls(docs, lexical, dense, alive=alive, embedder_name=built_with,
                    config=config or SearchConfig())
        index._compacted = False
        # A format-2 index keeps its main segment in the directory itself: the first save writes a new one.
        index._bm25_dir = files["bm25"] if files["bm25"] != "." else None
        return index
