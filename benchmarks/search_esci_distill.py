"""Would more training queries help the ranker, if the cross-encoder labelled them? A probe, dev only.

    taskset -c 1 .venv/bin/python benchmarks/search_esci_distill.py [--data ../shared/data] [--synthetic 300]

The ranker learns from 100 judged dev queries. Synthetic queries cost nothing to make (spans of product
titles from the catalog, no labels read); the shipped cross-encoder grades their top candidates offline,
where its ~10 ms a pair does not matter, and the ranker then trains on both. Grades: the cross-encoder logit
thresholds that best separate Exact / Substitute / the rest among the dev queries' top candidates. Compared by 5-fold CV
on dev (3 fold seeds): each held-out fold is scored by a ranker trained on the other four folds plus 0, 100
or all synthetic queries; test is scored once with the setting dev prefers. Cross-encoder scores are cached in
benchmarks/work/search_esci/crossencoder_scores.json (shared with search_esci_crossencoder.py). Writes
benchmarks/results/search_esci_distill.json.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import search_esci as bench
from _common import head_commit
from search_esci_crossencoder import CachedScores
from search_esci_parts import load_esci, ndcg_at

from shelfwise.search.bandit import DEFAULT_ARMS
from shelfwise.search.learning import judged_training_data
from shelfwise.search.pipeline import rrf_scores
from shelfwise.search.rank import LTRRanker, feature_matrix

TOP = 40  # candidates the cross-encoder grades per synthetic query; the rest of the arm's list is graded 0


def synthetic_queries(docs, n: int, seed: int = 0) -> list[str]:  # type: ignore[no-untyped-def]
    """Spans of 2-5 words from product titles, after the brand: what a shopper who wants that product might
    type. Only catalog text; no judgement is read."""
    rng = np.random.default_rng(seed)
    out: list[str] = []
    for i in rng.permutation(len(docs)):
        d = docs[int(i)]
        words = [w for w in re.findall(r"[a-z0-9][a-z0-9'-]*", d.title.lower())
                 if w not in set(d.brand.lower().split())]
        if len(words) < 3:
            continue
        length = int(rng.integers(2, 6))
        start = int(rng.integers(0, max(1, min(6, len(words) - length + 1))))
        query = " ".join(words[start : start + length])
        if query not in out:
            out.append(query)
        if len(out) == n:
            break
    return out


def thresholds(dev_pairs: list[tuple[float, int]]) -> tuple[float, float]:
    """Logit cut-offs for Exact (3) and Substitute (2) that maximise grading accuracy on judged dev pairs."""
    logits = np.array([s for s, _ in dev_pairs])
    labels = np.array([min(lbl, 3) for _, lbl in dev_pairs])
    target = np.where(labels == 3, 3, np.where(labels == 2, 2, 0))
    grid = np.quantile(logits, np.linspace(0.05, 0.95, 37))
    best = (-1.0, 0.0, 0.0)
    for t_e in grid:
        for t_s in grid[grid <= t_e]:
            graded = np.where(logits >= t_e, 3, np.where(logits >= t_s, 2, 0))
            acc = float((graded == target).mean())
            if acc > best[0]:
                best = (acc, float(t_e), float(t_s))
    return best[1], best[2]


def synthetic_training_data(searcher, queries: list[str], ce: CachedScores, cuts: tuple[float, float]):  # type: ignore[no-untyped-def]
    xs, ys, groups = [], [], []
    ids = searcher.index.ids
    for text in queries:
        q = searcher.query(text)
        rows, found = searcher.candidates(q, DEFAULT_ARMS[-1])
        if len(rows) < 2:
            continue
        order = np.argsort(-rrf_scores(rows, found), kind="stable")
        head = rows[order[:TOP]]
        logits = ce(text, [ids[r] for r in head])
        grades = np.zeros(len(rows), dtype=np.int32)
        grades[order[:TOP]] = np.where(logits >= cuts[0], 3, np.where(logits >= cuts[1], 2, 0))
        if grades.max() == 0:
            continue
        xs.append(feature_matrix(q, rows))
        ys.append(grades)
        groups.append(len(rows))
    return xs, ys, groups


def evaluate(searcher, ranker: LTRRanker, text: str, labels: dict) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    ids, q = searcher.index.ids, searcher.query(text)
    rows, _ = searcher.candidates(q, DEFAULT_ARMS[-1])
    full = [ids[r] for r in rows[np.argsort(-ranker.predict(feature_matrix(q, rows)), kind="stable")]]
    judged = np.array([searcher.index.row_of[p] for p in labels if p in searcher.index.row_of])
    rerank = [ids[r] for r in judged[np.argsort(-ranker.predict(feature_matrix(q, judged)), kind="stable")]]
    return ndcg_at(full, labels, 10), ndcg_at(rerank, labels, 10)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--synthetic", type=int, default=300)
    args = ap.parse_args()
    commit = head_commit()
    products, qrels, dev, test = load_esci(Path(args.data) / "esci-us-judgments-subset")
    sw, searcher, tuned = bench.tuned_searcher(ROOT / "benchmarks" / "results" / "search_esci.json", products, "local")
    params = tuned["tuned"]["ranker"]
    ce = CachedScores(bench.WORK / "crossencoder_scores.json", searcher.index.docs)
    t0 = time.perf_counter()
    # The population the grades are for: each dev query's top candidates, as for a synthetic query (unjudged
    # ones count as Irrelevant, as the benchmark scores them). Judged pairs alone are mostly Exact.
    dev_pairs = []
    for q in dev:
        rows, found = searcher.candidates(searcher.query(q), DEFAULT_ARMS[-1])
        head = [searcher.index.ids[r] for r in rows[np.argsort(-rrf_scores(rows, found), kind="stable")[:TOP]]]
        dev_pairs += [(float(s), qrels[q].get(p, 0)) for s, p in zip(ce(q, head), head, strict=True)]
    cuts = thresholds(dev_pairs)
    bench.log(f"grading cut-offs (dev judged pairs): Exact >= {cuts[0]:.2f}, Substitute >= {cuts[1]:.2f}")
    queries = synthetic_queries(searcher.index.docs, args.synthetic)
    sx, sy, sg = synthetic_training_data(searcher, queries, ce, cuts)
    ce.save()
    bench.log(f"{len(sg)} synthetic queries graded, {time.perf_counter() - t0:.0f} s; e.g. {queries[:5]}")
    rows: list = []
    X, y, groups = judged_training_data(searcher, {q: qrels[q] for q in dev}, rows_out=rows)
    starts = np.concatenate([[0], np.cumsum(groups)])
    sizes = (0, min(100, len(sg)), len(sg))
    cv: dict[int, list[tuple[float, float]]] = {m: [] for m in sizes}
    for fold_seed in range(3):
        fold_of = np.random.default_rng(fold_seed).permutation(len(groups)) % 5
        for f in range(5):
            train = [g for g in range(len(groups)) if fold_of[g] != f]
            r = np.concatenate([np.arange(starts[g], starts[g + 1]) for g in train])
            for m in sizes:
                Xt = np.vstack([X[r], *sx[:m]]) if m else X[r]
                yt = np.concatenate([y[r], *sy[:m]]) if m else y[r]
                ranker = LTRRanker(**params).fit(Xt, yt, [groups[g] for g in train] + sg[:m])
                cv[m] += [evaluate(searcher, ranker, rows[g][0], qrels[rows[g][0]])
                          for g in range(len(groups)) if fold_of[g] == f]
        bench.log(f"fold seed {fold_seed}: " + ", ".join(
            f"{m}: {np.mean([a for a, _ in cv[m]]):.4f}/{np.mean([b for _, b in cv[m]]):.4f}" for m in sizes))
    out: dict = {"commit": commit, "ranker": params, "cutoffs": {"exact": cuts[0], "substitute": cuts[1]},
                 "synthetic_queries": len(sg), "examples": queries[:10], "dev_cv": {}, "test": {}}
    for m in sizes:
        out["dev_cv"][str(m)] = {"full": round(float(np.mean([a for a, _ in cv[m]])), 4),
                                 "rerank": round(float(np.mean([b for _, b in cv[m]])), 4)}
    best = max(sizes, key=lambda m: sum(out["dev_cv"][str(m)].values()))
    for m in sorted({0, best}):
        Xt = np.vstack([X, *sx[:m]]) if m else X
        yt = np.concatenate([y, *sy[:m]]) if m else y
        ranker = LTRRanker(**params).fit(Xt, yt, list(groups) + sg[:m])
        scores = [evaluate(searcher, ranker, q, qrels[q]) for q in test]
        out["test"][str(m)] = {"full": round(float(np.mean([a for a, _ in scores])), 4),
                               "rerank": round(float(np.mean([b for _, b in scores])), 4)}
    out["chosen_on_dev"] = best
    bench.log(json.dumps({k: out[k] for k in ("dev_cv", "test", "chosen_on_dev")}))
    (ROOT / "benchmarks" / "results" / "search_esci_distill.json").write_text(json.dumps(out, indent=1))
    sw.close()


if __name__ == "__main__":
    main()
