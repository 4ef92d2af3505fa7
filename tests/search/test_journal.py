"""The index's change journal: one product's change made durable without rewriting the index, replayed on
load, applied by another process's copy, and safe against torn appends and crashes between files."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest

from shelfwise.errors import IndexStateError
from shelfwise.llm.embed import HashingEmbedder
from shelfwise.search import SearchConfig, SearchIndex
from shelfwise.search.documents import ProductDoc, load_docs
from shelfwise.search.journal import JOURNAL_FILE, read_records
from shelfwise.search.locking import ReadWriteLock
from shelfwise.search.pipeline import Searcher
from shelfwise.search.retrievers import get_retriever

EMB = HashingEmbedder(dim=64)


def _ids(index, text, strategy="lexical", k=5):
    searcher = Searcher(index, EMB)
    return [c.product_id for c in get_retriever(strategy).retrieve(searcher.query(text), k)]


@pytest.fixture
def saved(app, tmp_path):
    """A built and saved index over the test catalog, and its directory."""
    with app.db.session() as s:
        index = SearchIndex.build(load_docs(s), EMB, SearchConfig())
    directory = tmp_path / "idx"
    index.save(directory)
    return index, directory


def _manifest(directory):
    return json.loads((directory / "manifest.json").read_text())


def test_a_change_is_journaled_not_saved_in_full_and_survives_a_restart(saved):
    index, directory = saved
    before = _manifest(directory)
    index.upsert(ProductDoc(id="p-kayak", title="Carbon fibre kayak paddle"), EMB)
    index.delete("p-boot")
    assert index.persist(directory) == "journal"
    assert _manifest(directory) == before  # no file of the full save was rewritten
    assert index.persist(directory) == "none"
    loaded = SearchIndex.load(directory)
    assert _ids(loaded, "kayak paddle")[0] == "p-kayak"
    assert _ids(loaded, "kayak paddle", strategy="dense")[0] == "p-kayak"
    assert "p-boot" not in loaded.row_of and len(loaded) == len(index)


def test_another_process_copy_applies_only_the_new_records(saved):
    writer, directory = saved
    reader = SearchIndex.load(directory)
    writer.upsert(ProductDoc(id="p-kayak", title="Carbon fibre kayak paddle"), EMB)
    writer.persist(directory)
    assert reader.catch_up(directory) is reader  # applied in place, not reloaded
    assert _ids(reader, "kayak")[0] == "p-kayak"
    writer.upsert(ProductDoc(id="p-kayak", title="Aluminium canoe paddle"), EMB)
    writer.delete("p-boot")
    writer.persist(directory)
    assert reader.catch_up(directory) is reader
    assert "p-kayak" not in _ids(reader, "kayak") and _ids(reader, "canoe")[0] == "p-kayak"
    assert "p-boot" not in reader.row_of
    assert reader.catch_up(directory) is reader and len(reader) == len(writer)  # nothing new: no change


def test_a_full_save_elsewhere_makes_a_copy_reload(saved):
    writer, directory = saved
    reader = SearchIndex.load(directory)
    writer.upsert(ProductDoc(id="p-kayak", title="Carbon fibre kayak paddle"), EMB)
    writer.save(directory)
    fresh = reader.catch_up(directory)
    assert fresh is not reader and _ids(fresh, "kayak")[0] == "p-kayak"


def test_the_journal_is_folded_into_a_full_save_when_it_grows(app, tmp_path):
    with app.db.session() as s:
        index = SearchIndex.build(load_docs(s), EMB, SearchConfig(journal_min_records=2, journal_share=0.0))
    directory = tmp_path / "idx"
    index.save(directory)
    kinds = []
    for i in range(3):
        index.upsert(ProductDoc(id=f"p-new{i}", title=f"widget number{i}"), EMB)
        kinds.append(index.persist(directory))
    assert kinds == ["journal", "journal", "save"]
    assert read_records(directory, _manifest(directory)["generation"]) == ([], 16)  # a fresh, empty journal
    assert {f"p-new{i}" for i in range(3)} <= set(SearchIndex.load(directory).row_of)


def test_a_torn_append_is_ignored_on_load_and_cut_by_the_next_append(saved):
    writer, directory = saved
    writer.upsert(ProductDoc(id="p-kayak", title="Carbon fibre kayak paddle"), EMB)
    writer.persist(directory)
    with open(directory / JOURNAL_FILE, "ab") as f:  # the process died half-way through its next append
        f.write(b"\x00\x00\x10\x00\xde\xad\xbe\xefhalf a rec")
    loaded = SearchIndex.load(directory)
    assert "p-kayak" in loaded.row_of
    loaded.upsert(ProductDoc(id="p-canoe", title="Aluminium canoe"), EMB)
    assert loaded.persist(directory) == "journal"
    again = SearchIndex.load(directory)
    assert {"p-kayak", "p-canoe"} <= set(again.row_of)
    records, end = read_records(directory, _manifest(directory)["generation"])
    assert [r[1].id for r in records] == ["p-kayak", "p-canoe"] and end == (directory / JOURNAL_FILE).stat().st_size


def test_a_crash_between_the_manifest_and_the_new_journal_loses_nothing(saved, monkeypatch):
    from shelfwise.search import index as index_module

    writer, directory = saved
    writer.upsert(ProductDoc(id="p-kayak", title="Carbon fibre kayak paddle"), EMB)
    writer.persist(directory)  # journaled under the first save's generation
    writer.upsert(ProductDoc(id="p-canoe", title="Aluminium canoe"), EMB)

    def crash(*_args, **_kwargs):
        raise SystemExit("power loss")

    monkeypatch.setattr(index_module, "start_journal", crash)
    with pytest.raises(SystemExit):
        writer.save(directory)  # the new manifest is in place, the old generation's journal still there
    monkeypatch.undo()
    loaded = SearchIndex.load(directory)  # the stale journal is not replayed on top of the new save
    assert {"p-kayak", "p-canoe"} <= set(loaded.row_of) and len(loaded) == len(writer)
    loaded.upsert(ProductDoc(id="p-raft", title="Inflatable raft"), EMB)
    assert loaded.persist(directory) == "save"  # no journal of its generation to extend
    assert "p-raft" in SearchIndex.load(directory).row_of


def test_a_journal_record_that_does_not_apply_is_a_clear_error(saved):
    from shelfwise.search.journal import append_records

    writer, directory = saved
    end = read_records(directory, writer.generation)[1]
    append_records(directory, end, [("rename", "p-boot")])
    with pytest.raises(IndexStateError, match="journal.*shelfwise index --rebuild"):
        SearchIndex.load(directory)


def test_queries_never_see_a_half_applied_change(saved):
    """Request threads search while another thread upserts in place: every query sees a whole index."""
    index, _ = saved
    searcher = Searcher(index, EMB)
    errors: list[BaseException] = []
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                searcher.search("paddle", 5)
            except BaseException as exc:  # noqa: BLE001 - any failure is the finding
                errors.append(exc)
                return

    threads = [threading.Thread(target=serve) for _ in range(3)]
    for t in threads:
        t.start()
    for i in range(150):
        index.upsert(ProductDoc(id=f"p-{i % 7}", title=f"paddle model{i}"), EMB)
    stop.set()
    for t in threads:
        t.join()
    assert not errors, errors[0]
    lexical = next(a for a in searcher.bandit.arms if a.name == "lexical")  # not an explored dense-only arm
    assert searcher.search("model149", 3, arm=lexical).product_ids[0] == "p-2"


def test_a_waiting_writer_holds_off_new_readers():
    lock = ReadWriteLock()
    order: list[str] = []
    reader_in = threading.Event()

    def first_reader():
        with lock.reading():
            reader_in.set()
            threading.Event().wait(0.2)
            order.append("reader 1 done")

    def writer():
        reader_in.wait()
        with lock.writing():
            order.append("writer")

    def late_reader():
        reader_in.wait()
        threading.Event().wait(0.05)  # arrives while the writer waits
        with lock.reading():
            order.append("reader 2")

    threads = [threading.Thread(target=f) for f in (first_reader, writer, late_reader)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert order == ["reader 1 done", "writer", "reader 2"]


def test_appended_vectors_share_one_growing_buffer():
    from shelfwise.search.dense import DenseIndex

    dense = DenseIndex(4, np.eye(4, dtype=np.float32))
    for i in range(100):
        dense.append(np.full(4, i, dtype=np.float32))
    assert dense.vectors.shape == (104, 4) and float(dense.vectors[-1, 0]) == 99.0
    assert np.array_equal(dense.vectors[:4], np.eye(4))
    base = dense.vectors.base
    dense.append(np.zeros(4, dtype=np.float32))
    assert dense.vectors.base is base  # no copy of the matrix for one more row


def test_zeros_a_crash_left_at_the_end_of_the_journal_are_not_a_record(saved):
    writer, directory = saved
    writer.upsert(ProductDoc(id="p-kayak", title="Carbon fibre kayak paddle"), EMB)
    writer.persist(directory)
    reader = SearchIndex.load(directory)
    with open(directory / JOURNAL_FILE, "ab") as f:  # the file grew, its data never reached the disk
        f.write(bytes(64))
    assert "p-kayak" in SearchIndex.load(directory).row_of
    assert reader.catch_up(directory) is reader
    writer.upsert(ProductDoc(id="p-canoe", title="Aluminium canoe"), EMB)
    assert writer.persist(directory) == "journal"  # appended where the readable journal ends
    assert {"p-kayak", "p-canoe"} <= set(reader.catch_up(directory).row_of)


def test_a_journal_shorter_than_a_copy_has_read_means_a_full_reload(saved):
    writer, directory = saved
    reader = SearchIndex.load(directory)
    writer.upsert(ProductDoc(id="p-kayak", title="Carbon fibre kayak paddle"), EMB)
    writer.persist(directory)
    reader.catch_up(directory)
    from shelfwise.search.journal import start_journal

    start_journal(directory, writer.generation)  # replaced by hand: same generation, fewer bytes
    fresh = reader.catch_up(directory)
    assert fresh is not reader and "p-kayak" not in fresh.row_of  # what the directory now says


def test_a_batch_that_does_not_apply_changes_nothing_and_is_not_retried_in_place(saved):
    from shelfwise.search.journal import append_records

    writer, directory = saved
    reader = SearchIndex.load(directory)
    rows = len(reader.docs)
    writer.upsert(ProductDoc(id="p-kayak", title="Carbon fibre kayak paddle"), EMB)
    writer.persist(directory)
    append_records(directory, read_records(directory, writer.generation)[1], [("rename", "p-boot")])
    for _ in range(2):
        with pytest.raises(IndexStateError, match="does not apply"):
            reader.catch_up(directory)
        assert len(reader.docs) == rows and "p-kayak" not in reader.row_of  # the good record was not applied


def test_a_large_catch_up_rebuilds_the_bm25_delta_once(saved, monkeypatch):
    from shelfwise.search.lexical import LexicalIndex

    writer, directory = saved
    reader = SearchIndex.load(directory)
    for i in range(40):
        writer.upsert(ProductDoc(id=f"p-n{i}", title=f"gadget model{i}"), EMB)
    writer.persist(directory)
    rebuilds = []
    real = LexicalIndex.rebuild_delta
    monkeypatch.setattr(LexicalIndex, "rebuild_delta", lambda self: (rebuilds.append(1), real(self))[1])
    reader.catch_up(directory)
    assert len(rebuilds) == 1 and _ids(reader, "model39")[0] == "p-n39"


def test_a_forked_child_starts_with_the_read_write_lock_free():
    import os

    lock = ReadWriteLock()
    with lock.reading():
        pid = os.fork()
        if pid == 0:  # the child: the reading thread is not here, so a writer must get in at once
            ok = threading.Event()
            t = threading.Thread(target=lambda: (lock.writing().__enter__(), ok.set()))
            t.start()
            os._exit(0 if ok.wait(2) else 1)
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_a_copy_with_no_save_to_extend_keeps_no_journal_and_saves_in_full(app, tmp_path, monkeypatch):
    with app.db.session() as s:
        index = SearchIndex.build(load_docs(s), EMB, SearchConfig())
    for i in range(30):  # an in-memory index (a notebook, a benchmark) does not pile up journal records
        index.upsert(ProductDoc(id=f"p-n{i}", title=f"gadget model{i}"), EMB)
    assert index._unsaved == []
    assert index.persist(tmp_path / "idx") == "save"
    loaded = SearchIndex.load(tmp_path / "idx")
    loaded.generation = None  # as for an index saved by an older version (no journal to extend)
    loaded._compacted = False
    loaded.upsert(ProductDoc(id="p-kayak", title="Carbon fibre kayak paddle"), EMB)
    assert loaded.persist(tmp_path / "idx") == "save"
    assert "p-kayak" in SearchIndex.load(tmp_path / "idx").row_of


def test_a_memory_snapshot_longer_than_the_index_after_a_merge_does_not_break_queries(service):
    """A merge of the BM25 delta renumbers rows (fewer); until the background refresh catches up, the loaded
    memory is longer than the index, and queries must still run."""
    searcher = service.searcher()
    searcher.index.delete("p-boot")
    searcher.index.compact()  # one row fewer, memory not refreshed yet
    q = searcher.query("summit tents")
    assert len(q.memory[0]) == len(searcher.index.docs)
    assert searcher.search("summit tents", 3, arm=next(a for a in searcher.bandit.arms if a.name == "broad")).hits
