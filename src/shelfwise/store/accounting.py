"""Persisted LLM accounting and the prompt-hash response cache."""

from __future__ import annotations

import threading
import time

from sqlalchemy import insert, select, update

from ..llm.base import RawResponse
from ..llm.client import CallRecord
from .db import Database
from .models import LLMCacheEntry, LLMCall

__all__ = ["DbCache", "DbRecorder"]


class DbRecorder:
    """Buffers call records and writes them in batches, so accounting adds little to each call."""

    def __init__(self, db: Database, *, flush_every: int = 64) -> None:
        self.db = db
        self.flush_every = flush_every
        self._buffer: list[dict] = []
        self._lock = threading.Lock()

    def record(self, call: CallRecord) -> None:
        with self._lock:
            self._buffer.append(call.model_dump())
            full = len(self._buffer) >= self.flush_every
        if full:
            self.flush()

    def flush(self) -> None:
        with self._lock:
            rows, self._buffer = self._buffer, []
        if rows:
            with self.db.session() as s:
                s.execute(insert(LLMCall), rows)


class DbCache:
    """The prompt-hash response cache, written behind.

    ``put`` buffers; the buffer is written in one transaction when it holds ``flush_every`` entries or
    ``flush_interval_s`` has passed since the last write, and on ``flush()`` (``Shelfwise.close`` calls it).
    With real models (seconds per call) every put is written at once, so a crash loses nothing that cost
    real time; with fast or cached backends the per-call commit (about 2 ms on SQLite) is amortised.
    """

    def __init__(self, db: Database, *, flush_every: int = 64, flush_interval_s: float = 1.0) -> None:
        self.db = db
        self.flush_every = flush_every
        self.flush_interval_s = flush_interval_s
        self._pending: dict[str, dict] = {}
        self._lock = threading.Lock()
        self._last_flush = time.monotonic()

    def get(self, prompt_hash: str) -> RawResponse | None:
        with self._lock:
            row = self._pending.get(prompt_hash)
        if row is None:
            with self.db.session() as s:
                entry = s.get(LLMCacheEntry, prompt_hash)
                if entry is None:
                    return None
                row = {"text": entry.text, "input_tokens": entry.input_tokens,
                       "output_tokens": entry.output_tokens, "model": entry.model}
        return RawResponse(text=row["text"], input_tokens=row["input_tokens"], output_tokens=row["output_tokens"],
                           model=row["model"])

    def put(self, prompt_hash: str, model: str, response: RawResponse, *, replace: bool = False) -> None:
        """Cache an answer. The first answer for a prompt stays (processes agree on one), unless ``replace``:
        the client's way to supersede a stored answer that no longer validates."""
        with self._lock:
            row = {"prompt_hash": prompt_hash, "model": model, "text": response.text,
                   "input_tokens": response.input_tokens, "output_tokens": response.output_tokens,
                   "replace": replace}
            if replace:
                self._pending[prompt_hash] = row
            else:
                self._pending.setdefault(prompt_hash, row)
            due = (len(self._pending) >= self.flush_every
                   or time.monotonic() - self._last_flush >= self.flush_interval_s)
        if due:
            self.flush()

    def flush(self) -> None:
        with self._lock:
            rows, self._pending = self._pending, {}
            self._last_flush = time.monotonic()
        if not rows:
            return
        with self.db.session() as s:
            # Another process (or an earlier run) may have cached the same prompt: keep the first answer.
            known = set(s.scalars(select(LLMCacheEntry.prompt_hash)
                                  .where(LLMCacheEntry.prompt_hash.in_(list(rows)))))
            fresh = [{k: v for k, v in r.items() if k != "replace"} for key, r in rows.items() if key not in known]
            if fresh:
                s.execute(insert(LLMCacheEntry), fresh)
            for key in known:
                r = rows[key]
                if r["replace"]:
                    s.execute(update(LLMCacheEntry).where(LLMCacheEntry.prompt_hash == key).values(
                        text=r["text"], input_tokens=r["input_tokens"], output_tokens=r["output_tokens"]))
