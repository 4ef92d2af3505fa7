"""Search benchmark on the ESCI US judgments subset (150 queries, 6,764 products) and OPE on the Open Bandit
Dataset. Train, tune and choose on dev queries only; report dev and test.

    .venv/bin/python benchmarks/search_esci.py [--data ../shared/data] [--steps 20000] [--quick]

Writes benchmarks/results/search_esci.json. Embeddings are cached in benchmarks/work/ (resumable).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from search_esci_parts import (
    bm25s_baseline,
    load_esci,
    ndcg_at,
    online_learning,
    ope_open_bandit,
    recall_exact,
)
from search_esci_tune import cv_ranker, tune_field_weights

from shelfwise.app import Shelfwise
from shelfwise.config import Settings
from shelfwise.search import SearchConfig, SearchIndex
from shelfwise.search.bandit import DEFAULT_ARMS, ContextualBandit, query_context
from shelfwise.search.documents import load_docs
from shelfwise.search.learning import judged_training_data
from shelfwise.search.memory import MemoryIndex, store_predicted
from shelfwise.search.models import MemoryEntry
from shelfwise.search.pipeline import Searcher, rrf_scores
from shelfwise.search.rank import LTRRanker, feature_matrix
from shelfwise.search.understanding import QueryUnderstanding
from shelfwise.store import Catalog, Listing

WORK = ROOT / "benchmarks" / "work" / "search_esci"
STRATEGIES = ("lexical", "structured", "dense", "memory")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def open_app(products: list[dict], embedder: str) -> Shelfwise:
    from shelfwise.config import EmbedderConfig

    home = WORK / "home"
    sw = Shelfwise.open(Settings(home=home, embedder=EmbedderConfig(backend=embedder)))
    with sw.db.session() as s:
        catalog = Catalog(s)
        if len(catalog.products(limit=10)) < 10:
            log("ingesting products")
            for p in products:
                catalog.upsert(Listing.model_validate(p), source="esci")
    return sw


def cached_vectors(sw: Shelfwise, docs: list) -> tuple[np.ndarray, float]:
    texts = [d.dense_text() for d in docs]
    digest = hashlib.sha256((sw.embedder.name + "\n".join(texts)).encode()).hexdigest()[:16]
    path = WORK / f"vectors_{digest}.npy"
    if path.exists():
        return np.load(path), float(json.loads((WORK / f"vectors_{digest}.json").read_text())["seconds"])
    t0 = time.perf_counter()
    vectors = sw.embedder.embed(texts)
    seconds = time.perf_counter() - t0
    np.save(path, vectors)
    (WORK / f"vectors_{digest}.json").write_text(json.dumps({"seconds": seconds}))
    return vectors, seconds


class CachedEmbedder:
    """Query-embedding cache for the simulation only (queries repeat); latency is measured without it."""

    def __init__(self, inner) -> None:  # type: ignore[no-untyped-def]
        self.inner, self.dim, self.name, self.cache = inner, inner.dim, inner.name, {}

    def embed(self, texts: list[str]) -> np.ndarray:
        key = tuple(texts)
        if key not in self.cache:
            self.cache[key] = self.inner.embed(texts)
        return self.cache[key]


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def evaluate(searcher: Searcher, queries: list[str], qrels: dict, ranker: LTRRanker | None, arm_of) -> dict:  # type: ignore[no-untyped-def]
    """Per strategy alone, RRF fusion of them, and the pipeline (bandit's greedy arm + LTR)."""
    out: dict = {name: {"ndcg10": [], "exact_recall100": []} for name in (*STRATEGIES, "fusion", "pipeline")}
    rerank = []
    for text in queries:
        labels = qrels[text]
        q = searcher.query(text)
        ids = searcher.index.ids
        lists = {}
        for name in STRATEGIES:
            cands = searcher.retrievers[name].retrieve(q, 100)
            lists[name] = [c.product_id for c in cands]
            out[name]["ndcg10"].append(ndcg_at(lists[name], labels, 10))
            out[name]["exact_recall100"].append(recall_exact(lists[name], labels, 100))
        found: dict[int, dict[str, int]] = {}
        for name, pids in lists.items():
            for rank, pid in enumerate(pids):
                found.setdefault(searcher.index.row_of[pid], {})[name] = rank
        rows = np.fromiter(found, dtype=np.int64)
        fused = [ids[r] for r in rows[np.argsort(-rrf_scores(rows, found), kind="stable")]][:100]
        out["fusion"]["ndcg10"].append(ndcg_at(fused, labels, 10))
        out["fusion"]["exact_recall100"].append(recall_exact(fused, labels, 100))
        arm = arm_of(q)
        rows, found = searcher.candidates(q, arm)
        scores, _, _ = searcher.score(q, rows, found)
        ranked = [ids[r] for r in rows[np.argsort(-scores, kind="stable")]][:100]
        out["pipeline"]["ndcg10"].append(ndcg_at(ranked, labels, 10))
        out["pipeline"]["exact_recall100"].append(recall_exact(ranked, labels, 100))
        judged = np.array([searcher.index.row_of[p] for p in labels if p in searcher.index.row_of])
        if ranker is not None and len(judged):
            s = ranker.predict(feature_matrix(q, judged))
            rerank.append(ndcg_at([ids[r] for r in judged[np.argsort(-s, kind="stable")]], labels, 10))
    summary = {name: {k: round(float(np.nanmean(v)), 4) for k, v in m.items()} for name, m in out.items()}
    return {"strategies": {n: summary[n] for n in STRATEGIES}, "fusion": summary["fusion"],
            "pipeline": summary["pipeline"], "rerank_pipeline": round(float(np.mean(rerank)), 4) if rerank else None}


def latency(searcher: Searcher, queries: list[str], passes: int = 3) -> dict:
    """Sequential, warm, one query at a time; query embedding on one torch thread (a 10-token sentence gains
    nothing from more, and the other core serves the next request). Impression logging is not included."""
    import torch

    torch.set_num_threads(1)
    searcher.search(queries[0], 10)  # warm
    times = []
    t_all = time.perf_counter()
    for _ in range(passes):
        for text in queries:
            t0 = time.perf_counter()
            searcher.search(text, 10)
            times.append((time.perf_counter() - t0) * 1000)
    total = time.perf_counter() - t_all
    embed = []  # the query embedding alone: the part of the request a faster embedder would shrink
    for text in queries:
        t0 = time.perf_counter()
        searcher.embedder.embed([text])
        embed.append((time.perf_counter() - t0) * 1000)
    return {"p50": round(float(np.percentile(times, 50)), 2), "p99": round(float(np.percentile(times, 99)), 2),
            "qps": round(len(times) / total, 1), "n": len(times),
            "embed_p50": round(float(np.percentile(embed, 50)), 2)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--steps", type=int, default=20000)
    ap.add_argument("--quick", action="store_true", help="fewer simulated searches, for a smoke run")
    ap.add_argument("--embedder", default="local", choices=["local", "hashing"],
                    help="hashing: a smoke run of the code path without the model (figures not comparable)")
    args = ap.parse_args()
    global WORK
    if args.embedder != "local":
        WORK = WORK.with_name(f"search_esci_{args.embedder}")
    data = Path(args.data)
    WORK.mkdir(parents=True, exist_ok=True)
    products, qrels, dev, test = load_esci(data / "esci-us-judgments-subset")
    results: dict = {"commit": subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, check=False,
                                              text=True).stdout.strip(), "machine": "2-core CPU, 24 GiB, no GPU"}
    log("bm25s baseline")
    base = bm25s_baseline(products, qrels, {"dev": dev, "test": test})

    sw = open_app(products, args.embedder)
    rss0 = rss_mb()
    with sw.db.session() as s:
        docs = load_docs(s)
    vectors, embed_s = cached_vectors(sw, docs)
    t0 = time.perf_counter()
    config = SearchConfig()
    index = SearchIndex.build(docs, sw.embedder, config, vectors=vectors)
    build_s = time.perf_counter() - t0
    index.save(WORK / "index")
    disk = sum(f.stat().st_size for f in (WORK / "index").rglob("*") if f.is_file())
    with sw.db.session() as s:
        # A fresh start: no clicks from an earlier run (they come from dev labels via the simulator).
        s.query(MemoryEntry).filter(MemoryEntry.source == "observed").delete()
        store_predicted(s, docs)
    with sw.db.session() as s:
        memory = MemoryIndex.load(s, index.row_of, len(index.docs), half_life_days=30, predicted_weight=0.3)
    results["index"] = {"products": len(index), "build_s": round(build_s, 2), "embed_s": round(embed_s, 1),
                        "rss_mb_delta": round(rss_mb() - rss0, 1), "disk_mb": round(disk / 2**20, 1)}
    log(f"index {results['index']}")
    understanding = QueryUnderstanding().fit(index.docs)
    embedder = CachedEmbedder(sw.embedder)
    searcher = Searcher(index, embedder, config=config, memory=memory, understanding=understanding)

    # 1) Tune on dev only: lexical field weights, then the ranker's hyper-parameters by 5-fold CV.
    log("tuning field weights on dev")
    weights, prior, dev_lex = tune_field_weights(searcher, dev, qrels)
    searcher.config = index.config = config = SearchConfig(field_weights=weights, popularity_weight=prior)
    results["tuned"] = {"field_weights": weights, "popularity_weight": prior, "dev_lexical_ndcg10": dev_lex}
    log(f"tuned {results['tuned']}")
    rows: list[tuple[str, np.ndarray]] = []
    X, y, groups = judged_training_data(searcher, {q: qrels[q] for q in dev}, rows_out=rows)
    judged_rows = [([index.ids[r] for r in rr], qrels[q]) for q, rr in rows]
    params, cv_report = cv_ranker(X, y, groups, judged_rows)
    results["tuned"]["ranker"] = params
    results["tuned"]["ranker_cv"] = cv_report[:4]
    log(f"ranker CV {cv_report[:3]}")
    ranker = LTRRanker(**params).fit(X, y, groups)
    searcher.ranker = ranker
    broad = DEFAULT_ARMS[-1]
    for split, queries in (("dev", dev), ("test", test)):
        log(f"evaluating {split}")
        ev = evaluate(searcher, queries, qrels, ranker, lambda q: broad)
        results[split] = {"bm25s": base[split], "strategies": ev["strategies"], "fusion": ev["fusion"],
                          "pipeline": ev["pipeline"],
                          "rerank_ndcg10": {"bm25s": base[split]["rerank_ndcg10"], "pipeline": ev["rerank_pipeline"]}}
        results[split]["bm25s"] = {k: v for k, v in base[split].items() if k != "rerank_ndcg10"}
        log(json.dumps(results[split]))
    results["ranker_importance"] = dict(list(ranker.feature_importance().items())[:8])

    # 2) Online learning from simulated clicks on dev queries, starting with no ranker and a fresh bandit.
    log("online learning")
    steps = min(args.steps, 2000) if args.quick else args.steps
    results["online"] = online_learning(sw, searcher, dev, qrels, steps=steps, log=log)
    log(json.dumps(results["online"]))
    # After online learning, the pipeline's arm is the bandit's greedy choice (ranker from judgements again).
    searcher.ranker = ranker
    bandit = searcher.bandit
    for split, queries in (("dev", dev), ("test", test)):
        ev = evaluate(searcher, queries, qrels, ranker, lambda q: bandit_arm(bandit, q))
        results[split]["pipeline_bandit_arm"] = ev["pipeline"]

    # 3) Latency, without the query-embedding cache, with the real embedder.
    searcher.embedder = sw.embedder
    results["latency_ms"] = latency(searcher, dev + test)
    results["qps"] = results["latency_ms"].pop("qps")
    log(f"latency {results['latency_ms']} qps {results['qps']}")

    # 4) Update visibility: change one product, upsert it, time until a query finds it by its new word.
    doc = index.docs[index.row_of[products[0]["id"]]]
    t0 = time.perf_counter()
    doc2 = type(doc)(**{**doc.__dict__, "title": doc.title + " zanzibarquux"})
    index.upsert(doc2, sw.embedder)
    hit = searcher.search("zanzibarquux", 5, arm=DEFAULT_ARMS[0]).product_ids
    results["update_visible_s"] = round(time.perf_counter() - t0, 4) if doc.id in hit else None

    # 5) Off-policy evaluation on the Open Bandit Dataset.
    log("OPE")
    results["ope"] = ope_open_bandit(data / "open-bandit-dataset")
    out = ROOT / "benchmarks" / "results" / "search_esci.json"
    if args.embedder != "local" or args.quick:
        out = WORK / "search_esci.json"  # smoke runs never overwrite the reported results
    out.write_text(json.dumps(results, indent=1))
    log(f"wrote {out}")
    sw.close()


def bandit_arm(bandit: ContextualBandit, q):  # type: ignore[no-untyped-def]
    name = bandit.predict([query_context(q)])[0]
    return next(a for a in DEFAULT_ARMS if a.name == name)


if __name__ == "__main__":
    main()
