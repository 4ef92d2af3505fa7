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
    target = {"manifest": "manifest.json", "rows": "rows.pkl", "vectors": "vectors.npy",
              "usearch": "dense.usearch"}.get(damage)
    if damage == "missing":
        path = tmp_path / "nowhere"
    else:
        path = tmp_path / "idx"
        (path / target).write_bytes(b"\x00garbage")
    with pytest.raises(IndexStateError, match="shelfwise index --rebuild"):
        SearchIndex.load(path)


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
