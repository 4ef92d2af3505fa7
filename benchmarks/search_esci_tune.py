"""Dev-only tuning for benchmarks/search_esci.py: lexical field weights (grid search) and ranker
hyper-parameters (5-fold cross-validation over dev queries). Test queries are never seen here."""

from __future__ import annotations

import itertools

import numpy as np
from search_esci_parts import ndcg_at

from shelfwise.search.config import FIELDS
from shelfwise.search.rank import LTRRanker


def tune_field_weights(searcher, dev: list[str], qrels: dict) -> tuple[dict[str, float], float, float]:  # type: ignore[no-untyped-def]
    """Grid over per-field weights and the popularity prior, scored by dev NDCG@10 of lexical alone."""
    ids = searcher.index.ids
    pop = searcher.index.popularity
    per_query = [(searcher.query(q).field_scores, qrels[q]) for q in dev]
    grid = {"title": (0.0, 0.5, 1.0), "brand": (0.0, 0.25, 0.5), "category": (0.0, 0.25, 0.5),
            "attributes": (0.0, 0.25), "text": (0.0, 0.25), "all": (1.0,)}
    best = (-1.0, {}, 0.0)
    for combo in itertools.product(*(grid[f] for f in FIELDS)):
        w = np.asarray(combo, dtype=np.float32)
        for prior in (0.0, 0.05, 0.15):
            scores = []
            for fs, labels in per_query:
                bm = w @ fs
                s = np.where(bm > 0, bm + prior * pop, 0.0)
                top = np.argpartition(-s, 10)[:10]
                top = top[np.argsort(-s[top])]
                scores.append(ndcg_at([ids[i] for i in top if s[i] > 0], labels, 10))
            value = float(np.mean(scores))
            if value > best[0]:
                best = (value, dict(zip(FIELDS, map(float, combo), strict=True)), prior)
    return best[1], best[2], round(best[0], 4)


def cv_ranker(X: np.ndarray, y: np.ndarray, groups: list[int], judged_rows, folds: int = 5) -> tuple[dict, list]:  # type: ignore[no-untyped-def]
    """Choose ranker hyper-parameters by k-fold CV over dev queries (NDCG@10 on each held-out fold's
    candidates). ``judged_rows``: per query, (product ids in row order, labels dict)."""
    starts = np.concatenate([[0], np.cumsum(groups)])
    rng = np.random.default_rng(0)
    fold_of = rng.permutation(len(groups)) % folds
    grid = [{"n_estimators": n, "num_leaves": l, "min_child_samples": m, "learning_rate": 0.05}
            for n, l, m in itertools.product((100, 300), (7, 15), (20, 80))]
    report = []
    for params in grid:
        scores = []
        for f in range(folds):
            train = [g for g in range(len(groups)) if fold_of[g] != f]
            rows = np.concatenate([np.arange(starts[g], starts[g + 1]) for g in train])
            model = LTRRanker(**params).fit(X[rows], y[rows], [groups[g] for g in train])
            for g in range(len(groups)):
                if fold_of[g] != f:
                    continue
                s = model.predict(X[starts[g] : starts[g + 1]])
                pids, labels = judged_rows[g]
                scores.append(ndcg_at([pids[i] for i in np.argsort(-s, kind="stable")], labels, 10))
        report.append((round(float(np.mean(scores)), 4), params))
    report.sort(key=lambda r: -r[0])
    return report[0][1], report
