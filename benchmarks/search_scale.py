"""How the search index and request path grow with the catalog: the ESCI products copied k times.

    .venv/bin/python benchmarks/search_scale.py [--data ../shared/data] [--factors 1,4,16] [--out PATH]

Copy c of a product gets the id ``ASIN~c`` and its document vector plus a little noise (renormalised), so the
dense graph is not a pile of duplicates; the text is the same (BM25's idf is unchanged by copying every
document k times). The ranker is the LightGBM ranker fitted on the dev judgements at k = 1, the bandit
untrained (ε-greedy over its arms), so each size runs the full pipeline. Per size: index build, memory, save,
load; query latency (the query-vector cache off); one product's update visible in-process; made durable for
other worker processes (``SearchService._save_index``: a journal append, or the full save when the journal is
due for compaction); another worker catching up (``SearchIndex.catch_up``); and the query-understanding refit
a service runs after a change. Writes benchmarks/results/search_scale.json.

``--service-only`` measures the service on the ESCI catalog as a server runs it (impressions logged), first
with searches only, then with a shopper's click after every third search: what learning from clicks costs
the requests that follow (a copy of the benchmark's home database, so nothing is left behind); and a
seller's change through the catalog to ``SearchService.upsert`` to the next search. Its figures go under
"service" in the JSON, keeping the sizes of the last full run. Run it after the full run.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import head_commit
from search_esci import cached_vectors, log, open_app, rss_mb
from search_esci_parts import load_esci

from shelfwise.search import SearchConfig, SearchIndex
from shelfwise.search.bandit import DEFAULT_ARMS
from shelfwise.search.documents import load_docs
from shelfwise.search.learning import judged_training_data
from shelfwise.search.pipeline import Searcher
from shelfwise.search.rank import LTRRanker
from shelfwise.search.understanding import QueryUnderstanding


def copies(docs: list, vectors: np.ndarray, k: int, seed: int = 0) -> tuple[list, np.ndarray]:
    rng = np.random.default_rng(seed)
    out_docs, out_vecs = list(docs), [vectors]
    for c in range(1, k):
        out_docs += [type(d)(**{**d.__dict__, "id": f"{d.id}~{c}"}) for d in docs]
        noisy = vectors + rng.normal(0, 0.02, vectors.shape).astype(np.float32)
        out_vecs.append(noisy / np.linalg.norm(noisy, axis=1, keepdims=True))
    return out_docs, np.vstack(out_vecs).astype(np.float32)


def timed(fn):  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - t0


def latency(searcher: Searcher, queries: list[str], passes: int = 2) -> dict:
    searcher.embedder.query_cache_size = 0
    for q in queries[:5]:
        searcher.search(q, 10)
    times = []
    cpu0 = time.process_time()
    for _ in range(passes):
        for q in queries:
            t0 = time.perf_counter()
            searcher.search(q, 10)
            times.append((time.perf_counter() - t0) * 1000)
    cpu_ms = (time.process_time() - cpu0) / len(times) * 1000
    return {"p50": round(float(np.percentile(times, 50)), 2), "p99": round(float(np.percentile(times, 99)), 2),
            "cpu_ms_per_query": round(cpu_ms, 2), "n": len(times)}


def measure(k: int, base_docs: list, base_vectors: np.ndarray, embedder, ranker: LTRRanker,  # type: ignore[no-untyped-def]
            config: SearchConfig, queries: list[str], updates: int, full_save: bool) -> dict:
    docs, vectors = copies(base_docs, base_vectors, k)
    gc.collect()
    rss0 = rss_mb()
    index, build_s = timed(lambda: SearchIndex.build(docs, embedder, config, vectors=vectors))
    gc.collect()
    row: dict = {"factor": k, "products": len(index), "build_s": round(build_s, 2),
                 "rss_mb_delta": round(rss_mb() - rss0, 1)}
    understanding, fit_s = timed(lambda: QueryUnderstanding().fit(index.docs))
    row["understanding_fit_s"] = round(fit_s, 3)
    searcher = Searcher(index, embedder, config=config, understanding=understanding, ranker=ranker)
    row["latency_ms"] = latency(searcher, queries)
    log(f"x{k}: {len(index)} products, build {build_s:.1f} s, latency {row['latency_ms']}")
    tmp = Path(tempfile.mkdtemp(prefix="shelfwise-scale-"))
    try:
        _, save_s = timed(lambda: index.save(tmp))
        row["save_s"] = round(save_s, 2)
        row["disk_mb"] = round(sum(p.stat().st_size for p in tmp.rglob("*") if p.is_file()) / 2**20, 1)
        other, load_s = timed(lambda: SearchIndex.load(tmp, config))  # a second worker process's copy
        row["load_s"] = round(load_s, 2)
        embedder.embed(["warm up the document encoder"])
        visible, durable, catch_up = [], [], []
        for i in range(updates):
            doc = index.docs[index.row_of[base_docs[i].id]]
            word = f"zanzibar{i}quux"
            t0 = time.perf_counter()
            index.upsert(type(doc)(**{**doc.__dict__, "title": f"{doc.title} {word}"}), embedder)
            found = doc.id in searcher.search(word, 5, arm=DEFAULT_ARMS[0]).product_ids
            visible.append(time.perf_counter() - t0 if found else float("nan"))
            t0 = time.perf_counter()
            index.save(tmp) if full_save else index.persist(tmp)
            durable.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            other = SearchIndex.load(tmp, config) if full_save else other.catch_up(tmp)
            catch_up.append(time.perf_counter() - t0)
            if doc.id not in {other.docs[r].id for r in other.row_of.values() if word in other.docs[r].title}:
                raise AssertionError(f"the other worker does not see update {i}")
        row["update_visible_s"] = {"median": round(float(np.median(visible)), 4), "max": round(float(np.max(visible)), 4)}
        row["update_durable_s"] = {"median": round(float(np.median(durable)), 4), "max": round(float(np.max(durable)), 4)}
        row["other_worker_catch_up_s"] = {"median": round(float(np.median(catch_up)), 4),
                                          "max": round(float(np.max(catch_up)), 4)}
        log(f"x{k}: save {save_s:.2f} s, load {load_s:.2f} s, update visible {row['update_visible_s']}, "
            f"durable {row['update_durable_s']}, catch-up {row['other_worker_catch_up_s']}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return row


def service_latency(sw, config: SearchConfig, docs: list, vectors: np.ndarray, ranker: LTRRanker,  # type: ignore[no-untyped-def]
                    queries: list[str], click_every: int) -> dict:
    """p50 / p99 of ``SearchService.search`` (impression logged) over the queries twice, with a click on the
    top result after every ``click_every``-th search (0: none), each followed by the next search."""
    from shelfwise.app import Shelfwise
    from shelfwise.search import SearchService

    home = Path(tempfile.mkdtemp(prefix="shelfwise-service-"))
    try:
        shutil.copy(sw.settings.home / "shelfwise.db", home / "shelfwise.db")
        app = Shelfwise.open(sw.settings.model_copy(update={"home": home}))
        directory = home / "index"
        SearchIndex.build(docs, sw.search_embedder, config, vectors=vectors).save(directory)
        ranker.save(directory / "ranker.json")
        svc = SearchService(app, config, directory=directory)
        app.search_embedder.query_cache_size = 0
        for q in queries[:5]:
            svc.search(q, 10)
        times, after_click, clicks = [], [], 0
        clicked = False
        for i, q in enumerate(queries * 2):
            t0 = time.perf_counter()
            result = svc.search(q, 10)
            ms = (time.perf_counter() - t0) * 1000
            times.append(ms)
            if clicked:
                after_click.append(ms)
            clicked = bool(click_every and i % click_every == 0 and result.hits)
            if clicked:
                svc.feedback("click", result.hits[0].product_id, result.decision_id, position=0)
                clicks += 1
        svc.settle()
        out = {"p50": round(float(np.percentile(times, 50)), 2), "p99": round(float(np.percentile(times, 99)), 2),
               "n": len(times), "clicks": clicks}
        if after_click:
            out["right_after_a_click"] = {"p50": round(float(np.percentile(after_click, 50)), 2),
                                          "p99": round(float(np.percentile(after_click, 99)), 2)}
        else:  # once, without clicks: a seller's change through the catalog, SearchService.upsert, the next search
            out["upsert_then_search_s"] = _upsert_then_search(app, svc, docs[:10])
        app.close()
        return out
    finally:
        shutil.rmtree(home, ignore_errors=True)


def _upsert_then_search(app, svc, docs: list) -> dict:  # type: ignore[no-untyped-def]
    from shelfwise.store import Catalog, Listing

    upsert_s, search_s = [], []
    for i, doc in enumerate(docs):
        word = f"zanzibar{i}quux"
        with app.db.session() as s:
            product = Catalog(s).get(doc.id)
            Catalog(s).upsert(Listing(id=doc.id, title=f"{product.title} {word}", brand=product.brand,
                                      category_path=product.category_path), source="bench")
        t0 = time.perf_counter()
        svc.upsert(doc.id)
        t1 = time.perf_counter()
        found = doc.id in svc.search(word, 5, arm="lexical").product_ids
        t2 = time.perf_counter()
        upsert_s.append(t1 - t0)
        search_s.append(t2 - t1 if found else float("nan"))
    return {"upsert_median": round(float(np.median(upsert_s)), 3), "next_search_median": round(float(np.median(search_s)), 3),
            "total_max": round(float(np.max(np.add(upsert_s, search_s))), 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--factors", default="1,4,16")
    ap.add_argument("--updates", type=int, default=20, help="single-product updates timed per size")
    ap.add_argument("--full-save", action="store_true",
                    help="make each update durable by a full save and reload it in full (the path before the journal)")
    ap.add_argument("--service-only", action="store_true",
                    help="only the service's latency with and without clicks between searches (ESCI catalog)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "search_scale.json")
    args = ap.parse_args()
    commit = head_commit()
    products, qrels, dev, test = load_esci(args.data / "esci-us-judgments-subset")
    sw = open_app(products, "local")
    with sw.db.session() as s:
        docs = load_docs(s)
    vectors, _ = cached_vectors(sw, docs)
    tuned = json.loads((ROOT / "benchmarks" / "results" / "search_esci.json").read_text())["tuned"]
    config = SearchConfig(field_weights=tuned["field_weights"], popularity_weight=tuned["popularity_weight"])
    base = SearchIndex.build(docs, sw.search_embedder, config, vectors=vectors)
    searcher = Searcher(base, sw.search_embedder, config=config, understanding=QueryUnderstanding().fit(base.docs))
    X, y, groups = judged_training_data(searcher, {q: qrels[q] for q in dev})
    ranker = LTRRanker(**tuned["ranker"]).fit(X, y, groups)
    del base, searcher
    if args.service_only:
        out = {"commit": commit, "machine": f"{os.cpu_count()}-core CPU, no GPU", "products": len(docs),
               "searches_only": service_latency(sw, config, docs, vectors, ranker, dev + test, 0),
               "click_after_every_3rd_search": service_latency(sw, config, docs, vectors, ranker, dev + test, 3)}
        log(json.dumps(out))
        results = json.loads(args.out.read_text()) if args.out.exists() else {}
        results["service"] = out  # beside the sizes of the last full run, with its own commit
        args.out.write_text(json.dumps(results, indent=1))
        sw.close()
        return
    results = {"commit": commit, "machine": f"{os.cpu_count()}-core CPU, no GPU", "search_model": sw.search_embedder.name,
               "queries": len(dev + test), "durable_by": "full save" if args.full_save else "journal", "sizes": []}
    for k in (int(f) for f in args.factors.split(",")):
        results["sizes"].append(measure(k, docs, vectors, sw.search_embedder, ranker, config, dev + test, args.updates,
                                        args.full_save))
        args.out.write_text(json.dumps(results, indent=1))
        gc.collect()
    log(f"wrote {args.out}")
    sw.close()


if __name__ == "__main__":
    main()
