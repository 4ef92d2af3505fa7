"""The real path: the default search embedder (bge-small-en-v1.5, int8 ONNX) on the small catalog."""

from __future__ import annotations

import pytest

from shelfwise.app import Shelfwise
from shelfwise.config import Settings
from shelfwise.search import SearchService
from shelfwise.search.retrievers import get_retriever

from .search_fixtures import ingest


@pytest.fixture(scope="module")
def real_service(tmp_path_factory):
    """The default models on the small catalog, built once for this module (the index embeds every product)."""
    sw = Shelfwise.open(Settings(home=tmp_path_factory.mktemp("real") / "home"))
    ingest(sw)
    svc = SearchService(sw)
    svc.build_index()
    yield svc
    sw.close()


@pytest.mark.slow
def test_dense_retrieval_with_the_local_embedder(real_service):
    svc, sw = real_service, real_service.sw
    assert svc.searcher().embedder.name == "bge-small-en-v1.5" != sw.embedder.name  # search has its own model
    q = svc.searcher().query("something to make coffee at home")  # no product says "make"
    ids = [c.product_id for c in get_retriever("dense").retrieve(q, 3)]
    assert "p-espresso" in ids
    q = svc.searcher().query("earphones for a noisy flight")
    assert get_retriever("dense").retrieve(q, 1)[0].product_id == "p-headphones"
    result = svc.search("sleeping outdoors in the cold", arm="broad", explain=True)
    assert result.hits[0].product_id == "p-bag" and result.hits[0].features["cosine"] > 0.3


@pytest.mark.slow
def test_the_real_cross_encoder_stage_puts_the_relevant_product_first(real_service):
    svc = real_service
    # "charger" is in the USB-C charger's title and nowhere else, but the question is about headphones: a
    # query the first stage (no ranker trained: fusion) is free to get wrong, and the cross-encoder must not
    result = svc.search("headphones that block out plane noise", k=5, arm="broad", rerank=10)
    assert result.ranker == "rrf+ce" and result.hits[0].product_id == "p-headphones"
    scores = [h.rerank_score for h in result.hits]
    assert scores[0] == max(scores) and scores[0] > 0 > min(scores)  # relevant vs irrelevant logits
