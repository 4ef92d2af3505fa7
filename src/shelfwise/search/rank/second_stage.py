"""An optional second stage: a cross-encoder re-scores the first ranker's top results.

A cross-encoder reads the query and a product together, so it sees interactions a feature vector cannot
("case for iphone 12" vs "iphone 12"), but costs a full model pass per pair. It therefore re-scores only the
top ``depth`` of the LambdaMART (or fusion) ranking and the two opinions are blended on a common scale:
``z(first) + weight * z(cross-encoder)``, each standardised within those ``depth`` results. Blending, not
replacing: the first stage knows popularity, clicks and exact attribute matches that the cross-encoder,
trained on web passages, does not. Depth 20 and weight 2 were chosen by 5-fold CV on the ESCI dev queries.

Queries with observed clicks skip it by default (``skip_clicked``): the blend is fixed, and once clicks
and purchases on a query are in the memory index the click-trained pipeline ranks it better. In the simulated
online learning on ESCI dev queries the stage on every query lifted the cold start (NDCG@10 0.597 → 0.644)
but ended below the pipeline without it (0.771 against 0.800). A per-request ``rerank=N`` still applies.

Scores are cached by (query, product text): head queries repeat, and a changed product text misses the cache
by itself, so an update never serves a stale score.

Two modes. ``sync`` scores missing pairs inside the request (~10 ms each on one core: ~0.2 s for 20).
``background`` never makes a request wait: a query whose pairs are all cached is re-ranked, any other is
served by the first stage alone and its missing pairs are queued for one thread that scores them only in
quiet moments (no request for ``idle_gap_s``; SCHED_IDLE on Linux), so from its next search on the query
gets the cross-encoder at the cost of a cache lookup, and a saturated server does not pay for it. Shop traffic is head-heavy, so
most requests are repeats; a new query pays nothing and improves from its second visit.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import queue
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Literal, Protocol

import numpy as np

from ..documents import ProductDoc

__all__ = ["PairScorer", "SecondStage", "pair_text"]

log = logging.getLogger("shelfwise.search")
Mode = Literal["sync", "background"]


class PairScorer(Protocol):
    """Anything that scores (query, document) pairs jointly, higher = more relevant (``CrossEncoder``)."""

    name: str

    def score(self, query: str, documents: list[str]) -> np.ndarray: ...


def pair_text(doc: ProductDoc) -> str:
    """What the cross-encoder reads of a product: what a shopper sees first. Longer text (bullets, the
    description) was no better on the ESCI dev queries and costs time linearly."""
    leaf = doc.category.split(">")[-1].strip()
    return ". ".join(x for x in (doc.title, doc.brand, leaf) if x)


def _run_only_when_idle() -> None:
    """Put the calling thread below every request: Linux's SCHED_IDLE runs it only on CPU time nothing else
    wants (nice 10 still took a tenth of a busy core, and cost a saturated 2-core server 27 % of its q/s);
    elsewhere, the lowest niceness the platform allows. Both are per thread on Linux (the native id)."""
    tid = threading.get_native_id()
    try:
        os.sched_setscheduler(tid, os.SCHED_IDLE, os.sched_param(0))  # type: ignore[attr-defined]
    except (AttributeError, OSError):
        with contextlib.suppress(AttributeError, OSError):
            os.setpriority(os.PRIO_PROCESS, tid, 19)


def _z(a: np.ndarray) -> np.ndarray:
    return (a - a.mean()) / (a.std() + 1e-6)


class SecondStage:
    """Re-scores the first stage's top ``depth`` with ``scorer`` and blends; see the module docstring."""

    def __init__(self, scorer: PairScorer, *, depth: int = 20, weight: float = 2.0, cache_size: int = 50_000,
                 mode: Mode = "sync", queue_size: int = 1000, idle_gap_s: float = 0.05,
                 skip_clicked: bool = True) -> None:
        if depth < 0 or weight < 0 or cache_size < 0 or queue_size < 1:
            raise ValueError("depth, weight and cache_size must be >= 0, queue_size >= 1")
        if mode not in ("sync", "background"):
            raise ValueError(f"unknown second-stage mode {mode!r}; use 'sync' or 'background'")
        if mode == "background" and not cache_size:
            raise ValueError("the background mode serves from the score cache: give it a cache_size > 0")
        self.scorer, self.depth, self.weight, self.cache_size, self.mode = scorer, depth, weight, cache_size, mode
        self.skip_clicked = skip_clicked  # the Searcher leaves queries with observed clicks to the ranker
        self._cache: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._lock = threading.Lock()
        self.pairs_scored = 0  # model passes so far (cache misses): what the stage has cost
        self._queue: queue.Queue[tuple[str, list[str]] | None] = queue.Queue(maxsize=queue_size)  # None: wake up
        self._pending: set[tuple[str, tuple[str, ...]]] = set()
        self._worker: threading.Thread | None = None
        self.idle_gap_s = idle_gap_s  # background scoring waits this long after the last request
        self._last_request = 0.0
        self._closed = threading.Event()
        # A forked worker process (gunicorn --preload, multiprocessing) gets no threads, and may get a lock
        # copied while held: start it with fresh ones. Weakly, so the registration keeps no stage alive.
        ref = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: (stage := ref()) is not None and stage._after_fork())

    def _after_fork(self) -> None:
        self._lock = threading.Lock()
        self._queue = queue.Queue(maxsize=self._queue.maxsize)
        self._pending = set()
        self._worker = None
        self._closed = threading.Event()

    def __len__(self) -> int:
        """How many pair scores are cached."""
        return len(self._cache)

    def _cached(self, query: str, texts: list[str]) -> dict[str, float]:
        with self._lock:
            known = {t: self._cache[(query, t)] for t in texts if (query, t) in self._cache}
            for t in known:
                self._cache.move_to_end((query, t))
        return known

    def _score_missing(self, query: str, texts: list[str], known: dict[str, float]) -> None:
        missing = list(dict.fromkeys(t for t in texts if t not in known))
        if not missing:
            return
        fresh = dict(zip(missing, self.scorer.score(query, missing).tolist(), strict=True))
        known.update(fresh)
        with self._lock:
            self.pairs_scored += len(missing)
            self._remember([(query, t, s) for t, s in fresh.items()])

    def _remember(self, entries: list[tuple[str, str, float]]) -> None:
        """Add scores as the most recently used, then drop the least recently used beyond ``cache_size``.
        The caller holds the lock."""
        for q, t, s in entries:
            self._cache[(q, t)] = s
            self._cache.move_to_end((q, t))
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)

    def pair_scores(self, query: str, texts: list[str]) -> np.ndarray:
        """Scores of (query, text) pairs, from the cache or the model (always complete: the sync path)."""
        known = self._cached(query, texts)
        self._score_missing(query, texts, known)
        return np.array([known[t] for t in texts], dtype=np.float64)

    # -- background mode ------------------------------------------------------------------------------
    def _enqueue(self, query: str, texts: list[str]) -> None:
        key = (query, tuple(texts))
        with self._lock:
            if key in self._pending or self._closed.is_set():
                return
            if self._worker is None or not self._worker.is_alive():  # also after a fork: threads do not follow
                self._worker = threading.Thread(target=self._work, name="shelfwise-rerank", daemon=True)
                self._worker.start()
                atexit.register(self.close)
            try:
                self._queue.put_nowait((query, texts))
            except queue.Full:  # a burst of new queries: drop, the query is queued again on its next visit
                return
            self._pending.add(key)

    def _wait_for_a_quiet_moment(self) -> None:
        # In-process requests share the GIL with this thread, so an OS priority alone does not keep it out
        # of their way (a saturated 2-core server lost 24 % of its q/s): it scores only after ``idle_gap_s``
        # without a request, one pair at a time.
        while (wait := self._last_request + self.idle_gap_s - time.monotonic()) > 0 and not self._closed.is_set():
            self._closed.wait(min(wait, self.idle_gap_s))

    def _work(self) -> None:
        _run_only_when_idle()
        while True:
            item = self._queue.get()
            try:
                if item is not None and not self._closed.is_set():
                    self._score(*item)
            except Exception:  # a failing model must not kill the thread or the requests: log, go on
                log.exception("cross-encoder scoring in the background failed for %r", item[0])
            finally:
                if item is not None:
                    with self._lock:
                        self._pending.discard((item[0], tuple(item[1])))
                self._queue.task_done()
            if self._closed.is_set() and self._queue.empty():
                return

    def _score(self, query: str, texts: list[str]) -> None:
        known = self._cached(query, texts)
        for text in dict.fromkeys(t for t in texts if t not in known):
            self._wait_for_a_quiet_moment()
            if self._closed.is_set():
                return
            self._score_missing(query, [text], known)

    def drain(self) -> None:
        """Wait until the background queue is empty (tests, benchmarks, a graceful shutdown)."""
        self._queue.join()

    def close(self, timeout: float = 5.0) -> None:
        """Stop the background thread after the pair in flight; queued work is dropped. Registered at exit: a
        thread still inside onnxruntime while the interpreter shuts down aborts the process."""
        self._closed.set()
        worker = self._worker
        if worker is not None and worker.is_alive():
            with contextlib.suppress(queue.Full):
                self._queue.put_nowait(None)  # wake it if it waits for work
            worker.join(timeout)

    # -- persistence: a restarted server need not start cold -------------------------------------------
    def save(self, path: Path) -> int:
        """Write the cached scores (most recently used last); returns how many. Atomic (temp file + rename),
        so a concurrent reader or a second worker process never sees half a file."""
        with self._lock:
            entries = [[q, t, s] for (q, t), s in self._cache.items()]
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps({"model": self.scorer.name, "entries": entries}))
        os.replace(tmp, path)
        return len(entries)

    def load(self, path: Path) -> int:
        """Add saved scores to the cache; returns how many. A file from another model, or an unreadable one,
        is ignored with a warning: its scores would be on another scale, and the cache refills by itself."""
        try:
            data = json.loads(path.read_text())
            if data.get("model") != self.scorer.name:
                log.warning("ignoring %s: cross-encoder scores of %r, not %r", path, data.get("model"), self.scorer.name)
                return 0
            entries = [(str(q), str(t), float(s)) for q, t, s in data["entries"]]
        except FileNotFoundError:
            return 0
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
            log.warning("ignoring the unreadable cross-encoder score cache %s (%s)", path, exc)
            return 0
        with self._lock:
            self._remember(entries[-self.cache_size:] if self.cache_size else [])
            return min(len(entries), self.cache_size)

    def rerank(self, query: str, docs: Sequence[ProductDoc], first: np.ndarray, depth: int | None = None,
               *, wait: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The final order (indices into ``docs``, best first, all of them) and the cross-encoder scores of
        the re-scored head (aligned with ``order[:len(scores)]``; empty when the head was not re-scored).
        ``depth`` overrides the configured one; ``wait`` whether missing pairs are scored now (default: the
        sync mode does, the background mode queues them and returns the first stage's order)."""
        self._last_request = time.monotonic()
        depth = self.depth if depth is None else depth
        order = np.argsort(-first, kind="stable")
        head = order[:depth]
        if len(head) < 2:  # nothing to reorder
            return order, np.zeros(0)
        texts = [pair_text(docs[i]) for i in head]
        if (self.mode == "sync") if wait is None else wait:
            pair = self.pair_scores(query, texts)
        else:
            known = self._cached(query, texts)
            if len(known) < len(set(texts)):
                self._enqueue(query, texts)
                return order, np.zeros(0)
            pair = np.array([known[t] for t in texts], dtype=np.float64)
        blended = _z(first[head].astype(np.float64)) + self.weight * _z(pair)
        resort = np.argsort(-blended, kind="stable")
        return np.concatenate([head[resort], order[depth:]]), pair[resort]
