from __future__ import annotations

import numpy as np
import pytest

from shelfwise.errors import IndexStateError, NotFoundError
from shelfwise.llm.embed import HashingEmbedder
from shelfwise.search import SearchConfig, SearchIndex
from shelfwise.search.documents import ProductDoc, load_docs
from shelfwise.search.retrievers import get_retriever
from shelfwise.store import Catalog, Listing


def _ids(searcher_index, text, strategy="lexical", k=5):
    from shelfwise.search.pipeline import Searcher

    s = Searcher(searcher_index, HashingEmbedder(dim=64))
    return [c.product_id for c in get_retriever(strategy).retrieve(s.query(text), k)]


def _files(directory):
    import json

    return json.loads((directory / "manifest.json").read_text())["files"]


def _index(docs, **cfg):
    return SearchIndex.build(docs, HashingEmbedder(dim=64), SearchConfig(**cfg))


def test_build_reads_products_and_current_attributes(app):
    with app.db.session() as s:
        docs = load_docs(s)
    by_id = {d.id: d for d in docs}
    assert len(docs) == 10
    assert by_id["p-runner"].attributes == {"color": "red", "sport": "running"}
    assert by_id["p-headphones"].popularity > by_id["p-boot"].popularity  # rating_count prior


def test_incremental_add_update_delete_without_rebuild(app):
    with app.db.session() as s:
        index = _index(load_docs(s))
    emb = HashingEmbedder(dim=64)
    main_rows = index.lexical.main_n
    index.upsert(ProductDoc(id="p-new", title="Carbon fibre kayak paddle", category="Sports > Water"), emb)
    assert _ids(index, "kayak paddle")[0] == "p-new"
    index.upsert(ProductDoc(id="p-new", title="Aluminium canoe paddle", category="Sports > Water"), emb)
    assert "p-new" not in _ids(index, "kayak")  # the old text is gone
    assert _ids(index, "canoe")[0] == "p-new"
    assert _ids(index, "canoe", strategy="dense")[0] == "p-new"
    index.delete("p-new")
    assert "p-new" not in _ids(index, "canoe paddle") + _ids(index, "canoe paddle", strategy="dense")
    assert index.lexical.main_n == main_rows  # no rebuild happened
    with pytest.raises(NotFoundError):
        index.delete("p-new")


def test_delta_is_merged_past_its_limit(app):
    with app.db.session() as s:
        index = _index(load_docs(s), max_delta=2)
    emb = HashingEmbedder(dim=64)
    for i in range(3):
        index.upsert(ProductDoc(id=f"x{i}", title=f"widget number{i}"), emb)
    assert index.lexical.main_n == len(index.docs) == 13  # compacted: all rows in the main segment
    assert _ids(index, "number2")[0] == "x2"


def test_save_and_load_round_trip_with_updates(app, tmp_path):
    with app.db.session() as s:
        index = _index(load_docs(s))
    index.save(tmp_path / "idx")
    index.upsert(ProductDoc(id="p-late", title="Cast iron skillet"), HashingEmbedder(dim=64))
    index.delete("p-bag")
    index.save(tmp_path / "idx")
    loaded = SearchIndex.load(tmp_path / "idx")
    assert len(loaded) == len(index) == 10
    assert _ids(loaded, "skillet")[0] == "p-late"
    assert "p-bag" not in _ids(loaded, "sleeping bag winter")
    np.testing.assert_allclose(loaded.dense.vectors, index.dense.vectors)


@pytest.mark.parametrize("damage", ["missing", "manifest", "rows", "vectors", "usearch"])
def test_corrupt_or_missing_index_names_the_rebuild_command(app, tmp_path, damage):
    with app.db.session() as s:
        _index(load_docs(s)).save(tmp_path / "idx")
    target = {"manifest": "manifest.json", **_files(tmp_path / "idx")}.get(
        {"usearch": "dense"}.get(damage, damage))
    if damage == "missing":
        path = tmp_path / "nowhere"
    else:
        path = tmp_path / "idx"
        (path / target).write_bytes(b"\x00garbage")
    with pytest.raises(IndexStateError, match="shelfwise index --rebuild"):
        SearchIndex.load(path)


@pytest.mark.parametrize("manifest", ['{"format": 2}', "[1, 2]"])
def test_a_manifest_without_its_fields_is_corrupt_not_a_crash(app, tmp_path, manifest):
    import json

    with app.db.session() as s:
        _index(load_docs(s)).save(tmp_path / "idx")
    full = json.loads((tmp_path / "idx" / "manifest.json").read_text())
    broken = {**full, **json.loads(manifest)} if manifest.startswith("{") else json.loads(manifest)
    if isinstance(broken, dict):
        broken.pop("embedder")
    (tmp_path / "idx" / "manifest.json").write_text(json.dumps(broken))
    with pytest.raises(IndexStateError, match="shelfwise index --rebuild"):
        SearchIndex.load(tmp_path / "idx", embedder_name="hashing")


@pytest.mark.parametrize("crash_in", ["rows", "dense", "manifest"])
def test_a_crash_mid_save_leaves_the_previous_index_loadable(app, tmp_path, monkeypatch, crash_in):
    import pickle

    from shelfwise.search import dense
    from shelfwise.search import index as index_module

    with app.db.session() as s:
        index = _index(load_docs(s))
    index.save(tmp_path / "idx")
    index.upsert(ProductDoc(id="p-late", title="Cast iron skillet"), HashingEmbedder(dim=64))

    def crash(*_args, **_kwargs):
        raise SystemExit("power loss")

    def vectors_then_crash(self, vectors_path, graph_path):
        np.save(vectors_path, self.vectors)  # one file written, then the process dies
        crash()

    target = {"rows": (pickle, "dumps", crash), "dense": (dense.DenseIndex, "save", vectors_then_crash),
              "manifest": (index_module, "_atomic_write", crash)}[crash_in]
    monkeypatch.setattr(*target)
    with pytest.raises(SystemExit):
        index.save(tmp_path / "idx")
    monkeypatch.undo()
    loaded = SearchIndex.load(tmp_path / "idx")
    assert len(loaded) == 10 and "p-late" not in loaded.row_of
    index.save(tmp_path / "idx")  # the next save cleans up the orphans of the crashed one
    names = {p.name for p in (tmp_path / "idx").iterdir()}
    assert names == {"manifest.json", "journal.log", *_files(tmp_path / "idx").values()}
    assert _ids(SearchIndex.load(tmp_path / "idx"), "skillet")[0] == "p-late"


def test_a_format_2_index_is_still_read_and_upgraded_on_save(app, tmp_path):
    import json
    import pickle

    with app.db.session() as s:
        index = _index(load_docs(s))
    d = tmp_path / "idx"
    d.mkdir()
    index.lexical.save_main(d)
    state = {"docs": index.docs, "tokens": index.lexical.rows, "main_n": index.lexical.main_n, "alive": index.alive}
    (d / "rows.pkl").write_bytes(pickle.dumps(state))
    np.save(d / "vectors.npy", index.dense.vectors)
    index.dense.index.save(str(d / "dense.usearch"))
    (d / "manifest.json").write_text(json.dumps({"format": 2, "rows": 10, "live": 10, "dim": 64,
                                                 "embedder": index.embedder_name, "main_n": 10}))
    loaded = SearchIndex.load(d)
    assert _ids(loaded, "espresso")[0] == "p-espresso"
    loaded.save(d)
    assert {p.name for p in d.iterdir()} == {"manifest.json", "journal.log", *_files(d).values()}
    assert _ids(SearchIndex.load(d), "espresso")[0] == "p-espresso"


def test_index_rejects_another_embedder(app, tmp_path):
    with app.db.session() as s:
        _index(load_docs(s)).save(tmp_path / "idx")
    with pytest.raises(IndexStateError, match="embedder"):
        SearchIndex.load(tmp_path / "idx", embedder_name="some-other-model")


def test_service_sync_reindexes_only_changed_products(service, app):
    with app.db.session() as s:
        Catalog(s).upsert(Listing(id="p-boot", title="Leather hiking boots, waterproof", brand="Summit"))
        Catalog(s).delete("p-charger")
        Catalog(s).upsert(Listing(id="p-mug", title="Enamel camping mug"))
    assert service.sync() == {"updated": 2, "deleted": 1, "unchanged": 8}
    assert service.sync() == {"updated": 0, "deleted": 0, "unchanged": 10}
    hits = service.search("enamel mug", log_impression_event=False).product_ids
    assert hits[0] == "p-mug" and "p-charger" not in service.search("charger").product_ids


def test_dense_exact_and_graph_search_agree_and_skip_removed_rows():
    from shelfwise.search.dense import DenseIndex

    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(300, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    exact, graph = DenseIndex(16, vectors), DenseIndex(16, vectors, exact_max_rows=0)
    query = vectors[7] + 0.01
    rows, sims = exact.search(query, 5)
    assert rows[0] == 7 and np.all(np.diff(sims) <= 0)
    assert np.allclose(sims, vectors[rows] @ query, atol=1e-5)
    assert graph.search(query, 5)[0][0] == 7
    for index in (exact, graph):
        index.remove(7)
        assert 7 not in index.search(query, 5)[0].tolist()
    row = exact.append(vectors[7])
    assert exact.search(query, 1)[0].tolist() == [row]
