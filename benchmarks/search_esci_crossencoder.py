"""Would the shipped cross-encoder (ms-marco-MiniLM-L-12-v2, int8 ONNX) improve the pipeline as a second
stage? Chosen by 5-fold CV on dev only; the chosen setting is applied once to test.

    taskset -c 1 .venv/bin/python benchmarks/search_esci_crossencoder.py [--data ../shared/data]  # ~2 min

Stage 2 re-scores the LTR ranker's top D with ``z(ltr) + w * z(ce)`` (z: standardised within those D), for
D in 10, 20, 30, 50 and w in 0 (no stage 2), 0.25, 0.5, 1, 2, 4, on both protocols: the full-corpus list of
the broad arm and the judged-set re-rank. Each dev query is scored by a ranker trained on the other four
folds (the folds of ``cv_ranker``), with the tuned settings of the last ``search_esci.py`` run. Cross-encoder
scores are cached in benchmarks/work/search_esci/crossencoder_scores.json (resumable). Writes
benchmarks/results/search_esci_crossencoder.json. Figures and outcome: docs/benchmarks.md, "Search: ESCI".
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import search_esci as bench
from _common import head_commit
from search_esci_parts import load_esci, ndcg_at

from shelfwise.llm.onnx_models import CrossEncoder
from shelfwise.search.bandit import DEFAULT_ARMS
from shelfwise.search.learning import judged_training_data
from shelfwise.search.rank import LTRRanker, feature_matrix, pair_text

DEPTHS = (10, 20, 30, 50)
WEIGHTS = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)


# What the cross-encoder reads of a product. "short" is the product's (``rank.pair_text``): the fields a
# shopper sees first; the others add the catalog attributes, or the start of the bullets and description.
TEXTS = {
    "short": pair_text,
    "attributes": lambda d: ". ".join(x for x in (pair_text(d), ", ".join(f"{k}: {v}" for k, v in d.attributes.items())) if x),
    "text": lambda d: ". ".join(x for x in (pair_text(d), d.text[:300]) if x),
}


class CachedScores:
    def __init__(self, path: Path, docs, text: str = "short") -> None:  # type: ignore[no-untyped-def]
        self.path, self.model = path, CrossEncoder()
        self.scores: dict[str, float] = json.loads(path.read_text()) if path.exists() else {}
        self.text = {d.id: TEXTS[text](d) for d in docs}

    def __call__(self, query: str, pids: list[str]) -> np.ndarray:
        missing = [p for p in pids if f"{query}\t{p}" not in self.scores]
        for p, s in zip(missing, self.model.score(query, [self.text[p] for p in missing]), strict=True):
            self.scores[f"{query}\t{p}"] = float(s)
        return np.array([self.scores[f"{query}\t{p}"] for p in pids])

    def save(self) -> None:
        self.path.write_text(json.dumps(self.scores))


def _z(a: np.ndarray) -> np.ndarray:
    return (a - a.mean()) / (a.std() + 1e-6)


def per_query(searcher, ranker: LTRRanker, text: str, labels: dict, ce: CachedScores) -> dict:  # type: ignore[no-untyped-def]
    """NDCG@10 of every (protocol, D, w) for one query."""
    ids, q = searcher.index.ids, searcher.query(text)
    lists = {}
    rows, _ = searcher.candidates(q, DEFAULT_ARMS[-1])
    judged = np.array([searcher.index.row_of[p] for p in labels if p in searcher.index.row_of])
    for protocol, cand in (("full", rows), ("rerank", judged)):
        s = ranker.predict(feature_matrix(q, cand))
        order = np.argsort(-s, kind="stable")
        lists[protocol] = ([ids[r] for r in cand[order]], s[order])
    out = {}
    for protocol, (pids, s) in lists.items():
        for depth in DEPTHS:
            top, ltr = pids[:depth], s[:depth]
            logits = ce(text, top)
            for w in WEIGHTS:
                blended = _z(ltr) + w * _z(logits) if len(top) > 1 else ltr
                ranked = [top[i] for i in np.argsort(-blended, kind="stable")] + pids[depth:]
                out[f"{protocol}|{depth}|{w}"] = ndcg_at(ranked, labels, 10)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--text", default="short", choices=sorted(TEXTS), help="what the cross-encoder reads")
    args = ap.parse_args()
    suffix = "" if args.text == "short" else f"_{args.text}"
    commit = head_commit()
    products, qrels, dev, test = load_esci(Path(args.data) / "esci-us-judgments-subset")
    results_path = ROOT / "benchmarks" / "results" / "search_esci.json"
    sw, searcher, tuned = bench.tuned_searcher(results_path, products, "local")
    params = tuned["tuned"]["ranker"]
    ce = CachedScores(bench.WORK / f"crossencoder_scores{suffix}.json", searcher.index.docs, args.text)
    rows: list = []
    X, y, groups = judged_training_data(searcher, {q: qrels[q] for q in dev}, rows_out=rows)
    starts = np.concatenate([[0], np.cumsum(groups)])
    fold_of = np.random.default_rng(0).permutation(len(groups)) % 5  # cv_ranker's folds
    t0, dev_scores = time.perf_counter(), []
    for f in range(5):
        train = [g for g in range(len(groups)) if fold_of[g] != f]
        r = np.concatenate([np.arange(starts[g], starts[g + 1]) for g in train])
        ranker = LTRRanker(**params).fit(X[r], y[r], [groups[g] for g in train])
        dev_scores += [per_query(searcher, ranker, rows[g][0], qrels[rows[g][0]], ce)
                       for g in range(len(groups)) if fold_of[g] == f]
        ce.save()
        bench.log(f"fold {f} done, {time.perf_counter() - t0:.0f} s")
    ranker = LTRRanker(**params).fit(X, y, groups)
    test_scores = [per_query(searcher, ranker, q, qrels[q], ce) for q in test]
    ce.save()
    out: dict = {"commit": commit, "tuned_from_commit": tuned.get("commit"), "model": ce.model.name, "ranker": params,
                 "text": args.text}
    for split, scores in (("dev_cv", dev_scores), ("test", test_scores)):
        out[split] = {k: round(float(np.mean([s[k] for s in scores])), 4) for k in scores[0]}
    for protocol in ("full", "rerank"):
        keys = [k for k in out["dev_cv"] if k.startswith(protocol + "|")]
        best = max(keys, key=lambda k: out["dev_cv"][k])
        base = f"{protocol}|10|0.0"
        out[f"{protocol}_chosen_on_dev"] = {"setting": best, "dev_cv": out["dev_cv"][best],
                                            "dev_cv_without": out["dev_cv"][base], "test": out["test"][best],
                                            "test_without": out["test"][base]}
        bench.log(f"{protocol}: {out[f'{protocol}_chosen_on_dev']}")
    (ROOT / "benchmarks" / "results" / f"search_esci_crossencoder{suffix}.json").write_text(json.dumps(out, indent=1))
    sw.close()


if __name__ == "__main__":
    main()
