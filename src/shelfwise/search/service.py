"""``SearchService``: the library API used by the CLI, the HTTP API and the demo.

    svc = SearchService(sw)
    svc.build_index()                        # or svc.sync() for an incremental update from the catalog
    result = svc.search("red running shoes", k=10, explain=True)
    svc.feedback("click", result.hits[0].product_id, result.decision_id)
    svc.learn()                              # replay the log into the bandit and retrain the ranker
"""

from __future__ import annotations

import logging
import os
import threading
import time
from datetime import timedelta
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import MAX_RERANK_DEPTH
from ..errors import IndexStateError, InputError, NotFoundError, UnknownNameError
from ..store.events import SearchImpression
from ..store.models import Product
from .bandit import ContextualBandit
from .clock import utcnow
from .config import SearchConfig
from .documents import load_docs
from .feedback import log_impression, record_feedback
from .index import SearchIndex
from .journal import JOURNAL_FILE
from .learning import (
    judged_training_data,
    learn_bandit,
    replay_returns,
    train_ranker_from_log,
    validate_judgements,
)
from .locking import IndexLock
from .memory import store_predicted
from .pipeline import Searcher, SearchResult
from .query import SearchContext
from .rank import LTRRanker, SecondStage
from .signals import ShopperSignals

if TYPE_CHECKING:
    from ..app import Shelfwise

__all__ = ["SearchService"]

log = logging.getLogger("shelfwise.search")


RERANK_SCORES = "rerank_scores.json"  # the second stage's score cache, saved by ``learn``
MAX_SEGMENT_CHARS = 64  # a segment is a bandit context feature (one-hot by name), not free text
# What another process may save under the index directory; a change to any of them means "reload".
_WATCHED = ("manifest.json", JOURNAL_FILE, "bandit.npz", "ranker.json")


class SearchService:
    def __init__(self, sw: Shelfwise, config: SearchConfig | None = None, *, directory: Path | None = None) -> None:
        self.sw = sw
        self.config = config or SearchConfig()
        self.directory = directory or sw.settings.home / "index"
        self._searcher: Searcher | None = None
        self._memory_stale = False  # the index changed or feedback arrived: refresh memory and understanding
        self._signals = ShopperSignals(sw.db.session, self.config)  # refreshes them at the cost of the change
        self._lock = IndexLock(self.directory)
        self._stamp: dict[str, tuple[int, int, int] | None] = {}  # the saved files the loaded pipeline came from
        self._next_check = 0.0  # monotonic time of the next look at the disk
        self._ranker_error: IndexStateError | None = None
        self._failed_stamp: dict[str, tuple[int, int, int] | None] | None = None  # a save that did not load
        self._reloading: threading.Thread | None = None  # the background reload another worker's save started
        self._refreshing: threading.Thread | None = None  # the background memory refresh feedback started
        self._refresh_start = threading.Lock()  # one request starts that thread, not two
        self._last_refresh = 0.0  # monotonic time the memory was last refreshed
        self._swap = threading.Lock()  # one reload at a time in this process (taken after the index lock)

    # -- index --------------------------------------------------------------------------------------
    def _intents_for(self, docs: list) -> dict[str, list[tuple[str, float]]]:
        source = self.sw.providers.intents
        if source is None:
            return {}
        return {d.id: list(source.product_intents(d.id, k=5)) for d in docs}

    def build_index(self) -> dict[str, Any]:
        """Index every live product from scratch (``shelfwise index --rebuild``)."""
        t0 = time.perf_counter()
        with self._lock.hold():
            with self.sw.db.session() as s:
                docs = load_docs(s)
                index = SearchIndex.build(docs, self.sw.search_embedder, self.config)
                n_predicted = store_predicted(s, docs, self._intents_for(docs))
            index.save(self.directory)
            self._searcher = None  # the next request loads it with the bandit and ranker
        return {"products": len(index), "predicted_queries": n_predicted, "seconds": time.perf_counter() - t0}

    def sync(self) -> dict[str, int]:
        """Bring the index up to date with the catalog: add, re-index and drop changed products only."""
        with self._lock.hold():
            searcher = self._current(force_check=True)
            index = searcher.index
            with self.sw.db.session() as s:
                docs = {d.id: d for d in load_docs(s)}
                indexed = {index.docs[r].id: index.docs[r].stamp for r in index.row_of.values()}
                changed = [d for pid, d in docs.items() if indexed.get(pid) != d.stamp]
                removed = [pid for pid in indexed if pid not in docs]
                for doc in changed:
                    index.upsert(doc, self.sw.search_embedder)
                for pid in removed:
                    index.delete(pid)
                if changed:
                    store_predicted(s, changed, self._intents_for(changed))
            if changed or removed:
                self._save_index(searcher)
        return {"updated": len(changed), "deleted": len(removed), "unchanged": len(docs) - len(changed)}

    def upsert(self, product_id: str) -> str:
        """Re-index one product from the catalog, or drop it if it was deleted; visible at once here, and to
        other processes on their next check. Returns "indexed" or "removed"; ``NotFoundError`` for an id that
        is neither in the catalog nor in the index."""
        # Under the inter-process lock, on the newest saved index: another worker's change is kept, not
        # overwritten by this process's older copy.
        with self._lock.hold():
            searcher = self._current(force_check=True)
            with self.sw.db.session() as s:
                docs = load_docs(s, [product_id])
                if docs:
                    searcher.index.upsert(docs[0], self.sw.search_embedder)
                    store_predicted(s, docs, self._intents_for(docs))
                    status = "indexed"
                else:
                    removed = searcher.index.delete(product_id, missing_ok=True)
                    if not removed and s.get(Product, product_id) is None:
                        raise NotFoundError("product", product_id,
                                            fix="ingest it first (`shelfwise ingest` or POST /products)")
                    status = "removed"
            self._save_index(searcher)
        return status

    def _save_index(self, searcher: Searcher) -> None:
        searcher.index.persist(self.directory)  # a journal append, or a full save when one is due
        self._stamp = self._disk_stamp()  # our own save is not a reason to reload
        self._memory_stale = True

    # -- the loaded pipeline ----------------------------------------------------------------------------
    @cached_property
    def second_stage(self) -> SecondStage:
        """The cross-encoder stage, attached even when off (a request may ask for it). It outlives reloads of
        the pipeline: its score cache is keyed by product text, so an index change cannot make it stale."""
        rr = self.sw.settings.search_reranker
        stage = SecondStage(self.sw.cross_encoder, depth=rr.depth, weight=rr.weight, cache_size=rr.cache_size,
                            mode=rr.mode, skip_clicked=rr.skip_clicked)
        stage.load(self.directory / RERANK_SCORES)  # what ``learn`` saved: a restart does not start cold
        return stage

    def searcher(self) -> Searcher:
        """The loaded pipeline. At most every ``config.reload_check_seconds`` it stats the saved index and
        models (a few microseconds) and reloads what another process saved since."""
        searcher = self._current(force_check=False)
        if self._ranker_error is not None:
            raise self._ranker_error
        return searcher

    def _disk_stamp(self) -> dict[str, tuple[int, int, int] | None]:
        stamp: dict[str, tuple[int, int, int] | None] = {}
        for name in _WATCHED:
            try:
                st = os.stat(self.directory / name)
            except OSError:
                stamp[name] = None
            else:  # files are replaced by rename, so a save changes the inode as well as the time
                stamp[name] = (st.st_mtime_ns, st.st_ino, st.st_size)
        return stamp

    def _current(self, *, force_check: bool) -> Searcher:
        """The pipeline. Writers (``force_check``, under the exclusive lock) reload another process's save at
        once. A request only notices it (at most every ``reload_check_seconds``) and reloads in a background
        thread while it keeps serving the loaded copy: loading an index takes hundreds of milliseconds, and
        the shared lock may wait for another worker's training, neither of which a request can afford."""
        now = time.monotonic()
        if self._searcher is None:
            self._next_check = now + self.config.reload_check_seconds
            with self._lock.hold(shared=True), self._swap:
                if self._searcher is None:
                    self._reload(keep_on_error=False)
        elif force_check:
            self._next_check = now + self.config.reload_check_seconds
            if self._disk_stamp() != self._stamp:
                with self._swap:
                    self._reload(keep_on_error=False)
        elif now >= self._next_check:
            self._next_check = now + self.config.reload_check_seconds
            disk = self._disk_stamp()
            if disk != self._stamp and disk != self._failed_stamp and not self._reload_running():
                self._reloading = threading.Thread(target=self._reload_in_background, daemon=True,
                                                   name="shelfwise-search-reload")
                self._reloading.start()
        assert self._searcher is not None
        # Writers leave the memory alone (an upsert does not read it; what trains on it refreshes it itself).
        if self._memory_stale and not force_check:
            if self._searcher.memory is None:  # nothing to serve with yet
                self._refresh_memory(self._searcher)
            else:
                # Feedback or an index change: a request serves the memory it has (a few ms older) rather than
                # wait for the refresh (28 ms after a click, more after an upsert at 6.8 k products).
                with self._refresh_start:
                    if not (self._refreshing is not None and self._refreshing.is_alive()):
                        self._refreshing = threading.Thread(target=self._refresh_in_background, daemon=True,
                                                            name="shelfwise-search-signals")
                        self._refreshing.start()
        return self._searcher

    def _refresh_in_background(self) -> None:
        # Clicks come in bursts: wait out the interval since the last refresh, then fold them all in at once.
        wait = self._last_refresh + self.config.memory_refresh_seconds - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        searcher = self._searcher
        try:
            if searcher is not None:
                self._refresh_memory(searcher)
        except Exception:  # requests keep the memory they have; a request after the interval tries again
            self._memory_stale, self._last_refresh = True, time.monotonic()
            log.exception("background refresh of the search memory failed")

    def _reload_running(self) -> bool:
        return self._reloading is not None and self._reloading.is_alive()

    def _reload_in_background(self) -> None:
        try:
            with self._lock.hold(shared=True), self._swap:
                self._reload(keep_on_error=True)
                if self._memory_stale and self._searcher is not None:
                    self._refresh_memory(self._searcher)
        except Exception:  # a request keeps the loaded copy; the next check (or a writer) tries again
            log.exception("background reload of the search index failed")

    def settle(self, timeout: float = 30.0) -> None:
        """Wait for a background reload and memory refresh in flight, then bring the memory up to date (tests,
        and a graceful hand-over before a benchmark)."""
        for thread in (self._reloading, self._refreshing):
            if thread is not None:
                thread.join(timeout)
        if self._memory_stale and self._searcher is not None:
            self._refresh_memory(self._searcher)

    def _reload(self, *, keep_on_error: bool) -> None:
        old = self._searcher
        with self._lock.hold(shared=True):  # no writer is half-way through a save while we read
            stamp = self._disk_stamp()
            changed = {name for name in _WATCHED if old is None or stamp[name] != self._stamp.get(name)}
            caught_up = False
            try:
                if old is None or "manifest.json" in changed:
                    index = SearchIndex.load(self.directory, self.config, embedder_name=self.sw.search_embedder.name)
                elif JOURNAL_FILE in changed:  # another worker's single-product changes: apply just those
                    index, caught_up = old.index.catch_up(self.directory), True
                else:
                    index = old.index
                bandit = old.bandit if old is not None and "bandit.npz" not in changed else ContextualBandit(
                    epsilon=self.config.bandit_epsilon).load(self.directory / "bandit.npz")
            except IndexStateError as exc:
                if old is None or not keep_on_error:
                    raise
                # Serving the copy we have beats failing every request. Only readers skip this save from now
                # on (_failed_stamp); a writer still sees it as newer than what it holds and reloads or fails.
                log.warning("search index changed on disk but did not load; still serving the loaded one: %s", exc)
                self._failed_stamp = stamp
                return
            ranker = old.ranker if old is not None and "ranker.json" not in changed else self._load_ranker()
        searcher = Searcher(index, self.sw.search_embedder, config=self.config, intents=self.sw.providers.intents,
                            bandit=bandit, ranker=ranker, second_stage=self.second_stage)
        keep_memory = old is not None and index is old.index
        if keep_memory:
            searcher.memory, searcher.understanding = old.memory, old.understanding
        self._searcher, self._stamp, self._failed_stamp = searcher, stamp, None
        if caught_up or not keep_memory:  # after the swap: a refresh now works on the searcher requests get
            self._memory_stale = True

    def _load_ranker(self) -> LTRRanker | None:
        """The saved ranker, if any. A broken one fails searches (with how to retrain it) but not the
        commands that retrain or rebuild: they never need the old model."""
        self._ranker_error = None
        path = self.directory / "ranker.json"
        if not path.exists():
            return None
        try:
            return LTRRanker().load(path)
        except IndexStateError as exc:
            log.warning("%s", exc)
            self._ranker_error = exc
            return None

    def _refresh_memory(self, searcher: Searcher) -> None:
        self._memory_stale = False  # first: a change marked during the refresh makes it stale again
        memory, understanding = self._signals.refresh(searcher.index)
        searcher.memory, searcher.understanding = memory, understanding
        self._last_refresh = time.monotonic()
        current = self._searcher
        if current is not None and current is not searcher:  # swapped meanwhile (another worker's model save)
            if current.index is searcher.index:
                current.memory, current.understanding = memory, understanding
            else:
                self._memory_stale = True

    # -- requests -------------------------------------------------------------------------------------
    def reload(self) -> None:
        """Drop the loaded pipeline; the next request reloads index, models and providers."""
        self._searcher = None

    def search(self, query: object, k: int | None = None, *, context: SearchContext | None = None,
               explain: bool = False, arm: str | None = None, rerank: int | None = None,
               log_impression_event: bool = True) -> SearchResult:
        """Run the pipeline and log the decision. ``arm`` forces a strategy mix (logged with propensity 1).
        ``rerank`` re-scores that many top results with the cross-encoder (None: ``Settings.search_reranker
        .depth``, off by default; 0: off)."""
        k = k or self.config.default_k
        segment = context.user_segment if context else None
        if segment is not None and (not isinstance(segment, str) or len(segment) > MAX_SEGMENT_CHARS
                                    or not segment.isprintable()):
            raise InputError(f"user segment {str(segment)[:40]!r} is not a short printable name",
                             fix=f"use a name of at most {MAX_SEGMENT_CHARS} printable characters, e.g. 'app'")
        if rerank is not None and not 0 <= rerank <= MAX_RERANK_DEPTH:
            raise InputError(f"rerank depth {rerank} is out of range",
                             fix=f"use 0 (off) to {MAX_RERANK_DEPTH}; each re-scored result costs ~10 ms of CPU")
        searcher = self.searcher()
        forced = None
        if arm is not None:
            forced = next((a for a in searcher.bandit.arms if a.name == arm), None)
            if forced is None:
                raise UnknownNameError("strategy mix", arm, [a.name for a in searcher.bandit.arms])
        result = searcher.search(query, k, context, arm=forced, explain=explain, rerank=rerank)  # type: ignore[arg-type]
        if log_impression_event:
            with self.sw.db.session() as s:
                log_impression(s, SearchImpression(
                    query=result.query, decision_id=result.decision_id, product_ids=result.product_ids,
                    propensity=max(min(result.propensity, 1.0), 1e-6),
                    action={"arm": result.arm, "mix": result.mix, "ranker": result.ranker},
                    context=result.context, user_segment=context.user_segment if context else None))
        return result

    def feedback(self, kind: str, product_id: str, decision_id: str, *, position: int | None = None,
                 quantity: int = 1) -> int:
        with self.sw.db.session() as s:
            event_id = record_feedback(s, kind, product_id, decision_id, position=position, quantity=quantity,
                                       half_life_days=self.config.memory_half_life_days)
        self._memory_stale = True
        return event_id

    def train_ranker(self, judgements: object) -> dict[str, Any]:
        """Fit the ranker on graded judgements ({query: {product_id: 0..3}}: I, C, S, E) and save it. The old
        ranker is never needed, so this also replaces a broken one."""
        judgements = validate_judgements(judgements)
        with self._lock.hold():
            searcher = self._current(force_check=True)
            if self._memory_stale or searcher.memory is None:  # memory features: the latest feedback, right rows
                self._refresh_memory(searcher)
            X, y, groups = judged_training_data(searcher, judgements)
            if len(groups) < 2:
                raise InputError(f"only {len(groups)} judged queries with a relevant product",
                                 fix="give at least two queries, each with a product labelled above 0")
            self._save_ranker(searcher, LTRRanker().fit(X, y, groups))
        return {"queries": len(groups), "rows": len(y)}

    def _save_ranker(self, searcher: Searcher, ranker: LTRRanker) -> None:
        ranker.save(self.directory / "ranker.json")
        searcher.ranker, self._ranker_error = ranker, None
        self._stamp = self._disk_stamp()

    def learn(self, *, feedback_window: timedelta = timedelta(minutes=30), retrain_ranker: bool = True
              ) -> dict[str, Any]:
        """Replay the event log: returns into the memory index, closed decisions into the bandit, all logged
        impressions and interactions into the ranker's training data (IPW position-debiased); save the
        cross-encoder's score cache, if it has any, for the next start."""
        report: dict[str, Any] = {}
        # The newest saved bandit, under the lock: another worker's updates are built on, not overwritten.
        with self._lock.hold():
            searcher = self._current(force_check=True)
            with self.sw.db.session() as s:
                report["returns"] = replay_returns(s, self.config.memory_half_life_days)
                report["bandit_updates"] = learn_bandit(s, searcher.bandit, before=utcnow() - feedback_window)
            searcher.bandit.save(self.directory / "bandit.npz")
            self._stamp = self._disk_stamp()
            self._refresh_memory(searcher)
        if retrain_ranker:  # trained outside the lock: other workers' reloads and writes need not wait for it
            with self.sw.db.session() as s:
                ranker, n_queries = train_ranker_from_log(s, searcher)
            report["ranker_queries"] = n_queries
            if ranker is not None:
                with self._lock.hold():
                    self._save_ranker(self._current(force_check=True), ranker)
        if len(self.second_stage):
            report["rerank_scores_saved"] = self.second_stage.save(self.directory / RERANK_SCORES)
        return report
