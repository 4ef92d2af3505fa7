from shelfwise.llm.base import RawResponse
from shelfwise.store.accounting import DbCache
from shelfwise.store.db import Database


def _response(text: str) -> RawResponse:
    return RawResponse(text=text, input_tokens=3, output_tokens=2, model="m")


def _stored(db: Database) -> int:
    from sqlalchemy import func, select

    from shelfwise.store.models import LLMCacheEntry

    with db.session() as s:
        return s.scalar(select(func.count()).select_from(LLMCacheEntry))


def test_cache_writes_behind_in_batches_and_serves_pending_entries(any_db):
    cache = DbCache(any_db, flush_every=3, flush_interval_s=3600)
    cache.put("h1", "m", _response("a"))
    cache.put("h2", "m", _response("b"))
    assert _stored(any_db) == 0                      # buffered ...
    assert cache.get("h1").text == "a"               # ... yet already served
    cache.put("h3", "m", _response("c"))             # the third entry fills the batch
    assert _stored(any_db) == 3
    assert DbCache(any_db).get("h2").text == "b"     # another process sees it


def test_slow_calls_are_written_at_once_and_close_flushes(any_db):
    cache = DbCache(any_db, flush_every=100, flush_interval_s=0.0)   # "every call took longer than the interval"
    cache.put("h1", "m", _response("a"))
    assert _stored(any_db) == 1
    lazy = DbCache(any_db, flush_every=100, flush_interval_s=3600)
    lazy.put("h2", "m", _response("b"))
    assert _stored(any_db) == 1
    lazy.flush()
    assert _stored(any_db) == 2


def test_a_prompt_cached_elsewhere_keeps_its_first_answer(any_db):
    DbCache(any_db, flush_interval_s=0.0).put("h", "m", _response("first"))
    late = DbCache(any_db, flush_every=100, flush_interval_s=3600)
    late.put("h", "m", _response("second"))
    late.flush()                                     # no duplicate-key error
    assert DbCache(any_db).get("h").text == "first"

