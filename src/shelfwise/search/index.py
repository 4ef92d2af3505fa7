"""The persistent search index under ``settings.home/index/``: a row table, per-field BM25, dense vectors.

Rows are append-only: updating a product tombstones its old row and appends a new one; deleting tombstones
it. ``save()`` writes a new generation of files under fresh names, then atomically replaces the manifest that
names them, then deletes the previous generation: a crash mid-save leaves the previous index readable.
Between full saves, ``persist()`` appends single-product changes to the generation's journal (``journal``),
so making one change durable costs the change, not the catalog; ``load()`` replays it and ``catch_up()``
applies only what another process appended since. Anything missing or inconsistent on load raises
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
from .journal import append_records, fsync_directory, read_records, start_journal
from .lexical import LexicalIndex
from .locking import ReadWriteLock, ensure_directory

__all__ = ["FORMAT_VERSION", "REBUILD_HINT", "Embedder", "SearchIndex"]

REBUILD_HINT = "run `shelfwise index --rebuild`"
# 4: a journal of changes since the save; 3: generation-named files listed in the manifest (still read, as is 2:
# fixed names). A format-3 reader would ignore the journal and serve stale rows, hence the new number.
FORMAT_VERSION = 4
_READABLE_FORMATS = (2, 3, FORMAT_VERSION)


class Embedder(Protocol):
    dim: int
    name: str

    def embed(self, texts: list[str]) -> np.ndarray: ...


# Files of a format-2 index (one fixed name each, rewritten in place); still read, never written.
_FORMAT_2_FILES = {"rows": "rows.pkl", "vectors": "vectors.npy", "dense": "dense.usearch", "bm25": "."}
# What a save may leave behind: generations of these, and format 2's fixed names.
_INDEX_FILES = ("rows-*.pkl", "vectors-*.npy", "dense-*.usearch", "bm25-*", "rows.pkl", "vectors.npy",
                "dense.usearch", "bm25_*")
# A journaled change: ("upsert", ProductDoc, vector) or ("delete", product id).
Change = tuple[Any, ...]


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
    fsync_directory(path.parent)


def _journal_error(directory: Path, exc: Exception) -> IndexStateError:
    return IndexStateError(f"the journal of the search index at {directory} does not apply "
                           f"({type(exc).__name__}: {exc})", fix=REBUILD_HINT)


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
        self.guard = ReadWriteLock()  # queries read under it; changes made in place write under it
        self.generation: str | None = None  # the full save this copy extends (None: never saved or loaded)
        self._journal_end = 0  # bytes of that save's journal already applied here
        self._journal_records = 0
        self._unsaved: list[Change] = []  # changes made here since the last persist
        self._full_save_due = False  # changed without a save to extend: the next persist saves in full
        self._compacted = True  # the main BM25 segment differs from the saved one
        self.compactions = 0  # rows were renumbered this many times (row-keyed caches elsewhere check it)

    def _refresh_arrays(self) -> None:
        self.ids = np.array([d.id for d in self.docs], dtype=object)
        self.popularity = np.array([d.popularity for d in self.docs], dtype=np.float32)
        self.rating = np.array([d.rating for d in self.docs], dtype=np.float32)

    def _append_arrays(self, doc: ProductDoc) -> None:
        self.ids = np.append(self.ids, np.array([doc.id], dtype=object))
        self.popularity = np.append(self.popularity, np.float32(doc.popularity))
        self.rating = np.append(self.rating, np.float32(doc.rating))

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
        """Add or replace one product; visible to the next query at once, durable after ``persist``."""
        vector = embedder.embed([doc.dense_text()])[0]
        with self.guard.writing():
            row = self._put(doc, vector)
        self._journal(("upsert", doc, vector))
        return row

    def delete(self, product_id: str, *, missing_ok: bool = False) -> bool:
        with self.guard.writing():
            removed = self._drop(product_id)
        if removed:
            self._journal(("delete", product_id))
        elif not missing_ok:
            from ..errors import NotFoundError

            raise NotFoundError("indexed product", product_id, fix="index it first (`shelfwise index`)")
        return removed

    def _journal(self, change: Change) -> None:
        # Only a copy that extends a save keeps its changes for the journal; any other (built in memory, or
        # loaded from an older format) is saved in full by its next persist, so it need not hold them.
        if self.generation is not None:
            self._unsaved.append(change)
        else:
            self._full_save_due = True

    def _put(self, doc: ProductDoc, vector: np.ndarray, *, rebuild: bool = True) -> int:
        self._drop(doc.id)
        row = self.lexical.append(doc.field_tokens(), rebuild=rebuild)
        self.dense.append(vector)
        self.docs.append(doc)
        self.alive = np.append(self.alive, True)
        self.row_of[doc.id] = row
        self._append_arrays(doc)
        if self.lexical.needs_merge(self.config.max_delta):
            self.compact()
        return self.row_of[doc.id]

    def _drop(self, product_id: str) -> bool:
        row = self.row_of.pop(product_id, None)
        if row is None:
            return False
        self.alive[row] = False
        self.dense.remove(row)
        return True

    def _apply_all(self, changes: list[Change]) -> None:
        """Apply journaled changes in order, rebuilding the BM25 delta once for the batch (once per change
        would cost a batch of k changes k rebuilds, seconds under the write lock for a few hundred)."""
        for change in changes:  # check them all first: a batch applies whole or not at all
            if not (isinstance(change, tuple) and (
                    (len(change) == 3 and change[0] == "upsert" and isinstance(change[1], ProductDoc)
                     and np.shape(change[2]) == (self.dense.dim,))
                    or (len(change) == 2 and change[0] == "delete" and isinstance(change[1], str)))):
                raise ValueError(f"journal record {str(change)[:80]!r} is not an upsert or a delete of this index")
        for change in changes:
            if change[0] == "upsert":
                self._put(change[1], np.asarray(change[2], dtype=np.float32), rebuild=False)
            else:
                self._drop(change[1])
        self.lexical.rebuild_delta()

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
        self._compacted = True  # renumbered rows: the next persist is a full save
        self.compactions += 1

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
        if self._compacted or not files["bm25"] or not (directory / files["bm25"]).is_dir():
            files["bm25"] = f"bm25-{gen}"
            (directory / files["bm25"]).mkdir()
            self.lexical.save_main(directory / files["bm25"])
            _fsync_tree(directory / files["bm25"])
        state = {"docs": self.docs, "tokens": self.lexical.rows, "main_n": self.lexical.main_n, "alive": self.alive}
        (directory / files["rows"]).write_bytes(pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL))
        self.dense.save(directory / files["vectors"], directory / files["dense"])
        for key in ("rows", "vectors", "dense"):
            _fsync_tree(directory / files[key])
        manifest = {"format": FORMAT_VERSION, "generation": gen, "rows": len(self.docs), "live": len(self),
                    "dim": self.dense.dim, "embedder": self.embedder_name, "main_n": self.lexical.main_n,
                    "files": files, "saved_at": time.time()}
        _atomic_write(directory / "manifest.json", json.dumps(manifest, indent=1).encode())
        # After the manifest: a crash in between leaves the old journal, whose header names the old generation.
        self._journal_end = start_journal(directory, gen)
        self.generation, self._journal_records, self._unsaved, self._full_save_due = gen, 0, [], False
        self._compacted, self._bm25_dir = False, files["bm25"]
        _remove_unreferenced(directory, set(files.values()))

    def persist(self, directory: Path) -> str:
        """Make this copy's changes since its last persist durable for other processes: appended to the
        journal, or a full ``save`` when there is no save to extend, rows were renumbered, or the journal has
        grown past ``config.journal_share`` of the rows (then a load would replay too much). Call it under the
        index lock, on a copy that has caught up with the directory. Returns "journal", "save" or "none"."""
        if not self._unsaved and not self._compacted and not self._full_save_due:
            return "none"
        limit = max(self.config.journal_min_records, self.config.journal_share * len(self.docs))
        if (self.generation is not None and not self._compacted and not self._full_save_due
                and self._journal_records + len(self._unsaved) <= limit):
            try:
                self._journal_end = append_records(directory, self._journal_end, self._unsaved)
            except FileNotFoundError:  # the journal was removed by hand: the full save below starts a new one
                pass
            else:
                self._journal_records += len(self._unsaved)
                self._unsaved = []
                return "journal"
        self.save(directory)
        return "save"

    def catch_up(self, directory: Path) -> SearchIndex:
        """This copy with the changes another process journaled since it was loaded, applied in place; or, if
        that process made a full save since, the new save loaded. Call it with nothing unsaved here."""
        try:
            generation = json.loads((directory / "manifest.json").read_text()).get("generation")
        except (OSError, ValueError, AttributeError):
            generation = None
        found = read_records(directory, generation, self._journal_end) if generation == self.generation \
            and generation is not None else None
        if found is None:
            return SearchIndex.load(directory, self.config, embedder_name=self.embedder_name)
        changes, end = found
        if changes:
            with self.guard.writing():
                try:
                    self._apply_all(changes)
                except Exception as exc:
                    self.generation = None  # whatever applied, the next catch-up loads the directory afresh
                    raise _journal_error(directory, exc) from exc
        self._journal_end, self._journal_records = end, self._journal_records + len(changes)
        return self

    @classmethod
    def load(cls, directory: Path, config: SearchConfig | None = None, *, embedder_name: str | None = None) -> SearchIndex:
        manifest_path = directory / "manifest.json"
        if not manifest_path.exists():
            raise IndexStateError(f"no search index at {directory}", fix=REBUILD_HINT)
        try:
            manifest: dict[str, Any] = json.loads(manifest_path.read_text())
            if not isinstance(manifest, dict):
                raise TypeError("manifest.json is not an object")
            if manifest.get("format") not in _READABLE_FORMATS:
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
            generation = manifest.get("generation")
            journal = read_records(directory, generation) if generation else None
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
        if journal is not None:
            changes, index._journal_end = journal
            try:
                index._apply_all(changes)
            except Exception as exc:
                raise _journal_error(directory, exc) from exc
            index.generation, index._journal_records = generation, len(changes)
        return index
