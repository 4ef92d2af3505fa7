"""Persisted LLM accounting and the prompt-hash response cache."""

from __future__ import annotations

import threading

from sqlalchemy import insert, select

from ..llm.base import RawResponse
from ..llm.client import CallRecord
from .db import Database
from .models import LLMCacheEntry, LLMCall

__all__ = ["DbRecorder", "DbCache"]


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
    def __init__(self, db: Database) -> None:
        self.db = db

    def get(self, prompt_hash: str) -> RawResponse | None:
        with self.db.session() as s:
            row = s.get(LLMCacheEntry, prompt_hash)
            if row is None:
                return None
            return RawResponse(text=row.text, input_tokens=row.input_tokens, output_tokens=row.output_tokens,
                               model=row.model)

    def put(self, prompt_hash: str, model: str, response: RawResponse) -> None:
        with self.db.session() as s:
            if s.scalar(select(LLMCacheEntry.prompt_hash).where(LLMCacheEntry.prompt_hash == prompt_hash)):
                return
            s.add(LLMCacheEntry(prompt_hash=prompt_hash, model=model, text=response.text,
                                input_tokens=response.input_tokens, output_tokens=response.output_tokens))
