"""OA-Mine (ExtractGPT protocol) benchmark of the self-learning enrichment loop.

    .venv/bin/python benchmarks/enrich_oamine.py [--data ../shared/data] [--rounds 4 --per-round 12]
        [--test-n 40] [--full] [--backend local --model qwen2.5-coder-0.5b --supervisor-model qwen2.5-coder-1.5b]

1. Learning: ``--rounds`` batches of train products (seeded, category-stratified) go through the full loop;
   after each round a *simulated expert* answers the review queue from the TRAIN labels.
2. The knowledge base is frozen; a seeded, category-stratified sample of test products is extracted by
   (a) one small worker zero-shot, (b) the supervisor model alone on every product, (c) the full loop
   reading the frozen knowledge base (supervisor on disagreement, no learning, no human). How much accuracy a
   saved supervisor call may cost (``TrustConfig.call_cost``) is chosen before the test, on held-out TRAIN
   products (``--call-cost auto``, the default; ``select_call_cost``). ``--bench-below 0.25`` lets the loop
   bench a generator in a category once people overruled it there far more often than another generator
   (off by default, as in the library: measured without a clear F1 effect, docs/benchmarks.md). Test labels
   are read only for the final scoring.
3. Loop overhead (model time excluded) with ScriptedBackend doubles; products/min with the real models.

Resumable: state lives in ``--home`` (a SQLite database with the prompt-hash cache, job marks and the
predictions); re-running continues where it stopped. Writes benchmarks/results/enrich_oamine.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
from _common import head_commit

from shelfwise.app import Shelfwise
from shelfwise.config import DEFAULT_ROLES, EmbedderConfig, Settings
from shelfwise.enrich import EnrichmentLoop, LoopConfig, ReviewQueue, TrackRecord, TrustConfig
from shelfwise.enrich.drafts import format_worked, parse_worked
from shelfwise.enrich.kb import KnowledgeBase
from shelfwise.enrich.workers import LLMGenerator
from shelfwise.errors import ShelfwiseError
from shelfwise.store import Catalog, JobTracker, Listing

ROOT = Path(__file__).resolve().parent.parent


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def read_rows(path: Path, *, labels: bool) -> list[dict]:
    rows = []
    for i, line in enumerate(path.read_text().splitlines()):
        r = json.loads(line)
        row = {"i": i, "title": r["input"], "category": r["category"]}
        if labels:
            row["gold"] = r["target_scores"]
        rows.append(row)
    return rows


def stratified(rows: list[dict], n: int, seed: int) -> list[dict]:
    by_cat: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        by_cat[r["category"]].append(r)
    rng = random.Random(seed)
    for v in by_cat.values():
        rng.shuffle(v)
    out, cats = [], sorted(by_cat)
    while len(out) < n and any(by_cat.values()):
        for c in cats:
            if by_cat[c] and len(out) < n:
                out.append(by_cat[c].pop())
    return out


def score(preds: dict[str, dict[str, str | None]], gold: dict[str, dict[str, dict]]) -> dict[str, float]:
    tp = npred = ngold = 0
    for pid, g in gold.items():
        p = {a: v for a, v in preds.get(pid, {}).items() if v}
        npred += len(p)
        ngold += len(g)
        tp += sum(1 for a, v in p.items() if a in g and v.strip() in {x.strip() for x in g[a]})
    prec = tp / npred if npred else 0.0
    rec = tp / ngold if ngold else 0.0
    f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
    return {"p": round(prec * 100, 2), "r": round(rec * 100, 2), "f1": round(f1 * 100, 2), "n": len(gold)}


def settings_for(args, home: Path) -> Settings:
    roles = {}
    for role, cfg in DEFAULT_ROLES.items():
        model = {"supervisor": args.supervisor_model, "worker.generator.alt": args.alt_model}.get(role, args.model)
        roles[role] = cfg.model_copy(update={"backend": args.backend, "model": model, "base_url": args.base_url,
                                                   "timeout_s": args.timeout})
    return Settings(home=home, roles=roles, embedder=EmbedderConfig(backend=args.embedder), llm_threads=args.threads)


def ingest(sw: Shelfwise, rows: list[dict], prefix: str) -> list[str]:
    with sw.db.session() as s:
        Catalog(s).ingest([(r["i"], Listing(id=f"{prefix}-{r['i']}", title=r["title"], category_path=r["category"]))
                           for r in rows], source=prefix)
    return [f"{prefix}-{r['i']}" for r in rows]


def expert_answers(sw: Shelfwise, gold: dict[str, dict]) -> int:
    """The simulated expert: resolves open review items from the TRAIN labels."""
    n = 0
    with sw.db.session() as s:
        queue = ReviewQueue(s, KnowledgeBase(s, embedder=sw.embedder, space="production"))
        for item in queue.list("open", limit=10_000):
            if item.product_id in gold:
                vals = gold[item.product_id].get(item.attribute)
                queue.resolve(item.id, next(iter(vals)) if vals else None, actor="simulated-expert")
                n += 1
    return n


def expert_audit(sw: Shelfwise, gold: dict[str, dict], titles: dict[str, str]) -> int:
    """The simulated expert audits the knowledge base (learn-then-deploy): a learned value that the TRAIN
    labels of the products it came from contradict is removed (the learning retired when nothing is left)."""
    changed = 0
    with sw.db.session() as s:
        kb = KnowledgeBase(s, embedder=sw.embedder, space="production")
        by_title = {t[:120]: pid for pid, t in titles.items()}
        for lv in kb.list(status="active"):
            if lv.attribute is None and any(parse_worked(e) for e in lv.examples):
                changed += _audit_worked(kb, lv, gold, by_title)
                continue
            prods = [e.product_id for e in lv.evidence if e.product_id in gold]
            if not lv.attribute or not prods:
                continue

            def wrong(value: str, lv=lv, prods=prods) -> bool:
                seen = [p for p in prods if value.lower() in titles[p].lower()]
                return bool(seen) and all(value not in gold[p].get(lv.attribute, {}) for p in seen)

            values = list(lv.normalize.values()) or [e.rsplit(": ", 1)[-1] for e in lv.examples
                                                     if f"-> {lv.attribute}: " in e]
            bad = {v for v in values if wrong(v)}
            if not bad:
                continue
            keep = {k: v for k, v in lv.normalize.items() if v not in bad}
            if keep:
                kb.edit(lv.id, normalize=keep, actor="simulated-expert", reason="audit: contradicted by labels")
            else:
                kb.retire(lv.id, "audit: contradicted by the train labels", actor="simulated-expert")
            changed += 1
    return changed


def _audit_worked(kb: KnowledgeBase, lv, gold: dict[str, dict], by_title: dict[str, str]) -> int:  # type: ignore[no-untyped-def]
    """A worked example is rewritten to the TRAIN labels of the product it shows (values that are title spans)."""
    fixed = []
    for e in lv.examples:
        parsed = parse_worked(e)
        pid = by_title.get(parsed[0]) if parsed else None
        if parsed is None or pid is None:
            fixed.append(e)
            continue
        title = parsed[0]
        truth = {a: next(iter(vals)) for a, vals in gold[pid].items() if vals and next(iter(vals)).lower() in title.lower()}
        fixed.append(format_worked(title, truth) if truth else e)
    if fixed == lv.examples:
        return 0
    kb.edit(lv.id, examples=fixed, actor="simulated-expert", reason="audit: worked examples set to the labels")
    return 1


def batch_outcome(sw: Shelfwise, batch: str) -> tuple[dict, dict, int]:
    """A finished batch's per-product results, its predictions, and the supervisor calls the escalation
    budget spent on products without an open dispute."""
    results = JobTracker(sw.db, f"enrich:{batch}").results()
    preds = {pid: (r or {}).get("values", {}) for pid, r in results.items()}
    return results, preds, sum(1 for r in results.values() if _escalated_only(r))


def probe_batch(sw: Shelfwise, learning: LoopConfig, rows: list[dict], batch: str) -> dict:
    """Extract held-out TRAIN ``rows`` with the KB frozen as it is (no learning, no review) and score them
    against their train labels: disagreement, calls, F1 (resumable by ``batch``)."""
    ids = sorted(ingest(sw, rows, "train"))
    frozen = EnrichmentLoop(sw, learning.model_copy(update={"learn": False, "review_below": 0.0, "audit_rulings": 0.0,
                                                                "audit_settled": 0.0}))
    t0 = time.perf_counter()
    report = frozen.run_batch(ids, batch_id=batch,
                              on_product=lambda r: log(f"{batch}: {r.product_id} disagreements={r.disagreements}"))
    _results, preds, escalated = batch_outcome(sw, batch)
    gold = {f"train-{r['i']}": r["gold"] for r in rows}
    return {"batch": batch, "products": report.products, "disagreement_rate": round(report.disagreement_rate, 4),
            "disagreements": report.disagreements, "decided": report.decided, "settled_by_track_record": report.trusted,
            "agreed_by_span_convention": report.conventions,
            "screened_by_kb": report.screened, "products_with_a_benched_generator": report.benched, "supervisor_calls": report.supervisor_calls,
            "dispute_calls": report.supervisor_calls - escalated, "escalated_without_disagreement": escalated,
            "f1": score(preds, gold)["f1"], "wall_seconds": round(time.perf_counter() - t0, 1)}


def disagreement_trend(rounds: list[dict]) -> dict:
    """How the disagreement rate moved over the learning rounds. First -> last round is the issue's measure,
    but one round of a few products moves by several points; the least-squares slope over all rounds, with
    its 95 % interval (t, n - 2 degrees of freedom), says whether the rounds show a trend at all."""
    from scipy import stats

    rates = np.array([r["disagreement_rate"] for r in sorted(rounds, key=lambda r: r["round"])], dtype=float)
    n = len(rates)
    if n < 3:
        return {}
    x = np.arange(1, n + 1, dtype=float)
    fit = stats.linregress(x, rates)
    half = float(stats.t.ppf(0.975, n - 2) * fit.stderr)
    first_fit, last_fit = fit.intercept + fit.slope, fit.intercept + fit.slope * n
    k = max(1, n // 5)  # the first and last fifth of the rounds (2 of 10)
    early, late = float(rates[:k].mean()), float(rates[-k:].mean())
    return {"rounds": n, "first": float(rates[0]), "last": float(rates[-1]),
            "relative_change_first_to_last": round(float(rates[-1] / rates[0] - 1), 4) if rates[0] else None,
            f"mean_first_{k}": round(early, 4), f"mean_last_{k}": round(late, 4),
            "relative_change_of_those_means": round(late / early - 1, 4) if early else None,
            "slope_per_round": round(float(fit.slope), 5),
            "slope_ci95": [round(float(fit.slope) - half, 5), round(float(fit.slope) + half, 5)],
            "fitted_relative_change_first_to_last": round(float(last_fit / first_fit - 1), 4) if first_fit else None}


def probe(args, sw: Shelfwise, learning: LoopConfig, held_out: list[dict], commit: str) -> None:  # type: ignore[no-untyped-def]
    """Disagreement on held-out train products with the KB frozen as it is in --home (see --probe-only)."""
    rows = stratified(held_out, args.probe_only, args.seed + 1)
    with sw.db.session() as s:
        learnings = len(KnowledgeBase(s).list(status="active"))
    out = {"commit": commit, "probe": {"home": str(args.home), "active_learnings": learnings,
                                       **probe_batch(sw, learning, rows, args.probe_batch)}}
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    log(json.dumps(out))


def select_call_cost(sw: Shelfwise, learning: LoopConfig, rows: list[dict], grid: list[float],
                     tolerance: float = 1.0) -> dict:
    """Choose ``TrustConfig.call_cost`` for the frozen loop on held-out TRAIN products (never on test): every
    cost in ``grid`` runs the same products (the workers' calls are shared through the prompt cache); the pick
    is the one with the fewest supervisor calls on disputes whose F1 is within ``tolerance`` points of the
    cost-0 F1 (ties: the smaller cost). Calls spent by the escalation budget are left out of the comparison:
    ``call_cost`` does not govern them, and they depend on the uncertainty history the earlier trials left."""
    trials = []
    for cost in sorted({0.0, *grid}):
        cfg = learning.model_copy(update={"trust": learning.trust.model_copy(update={"call_cost": cost})})
        trials.append({"call_cost": cost, **probe_batch(sw, cfg, rows, f"select{len(rows)}-cc{cost:g}")})
    floor = trials[0]["f1"] - tolerance
    pick = min((t for t in trials if t["f1"] >= floor), key=lambda t: (t["dispute_calls"], t["call_cost"]))
    return {"rule": f"fewest supervisor calls on disputes with F1 >= F1(call_cost 0) - {tolerance:g}, on {len(rows)} held-out "
                    "train products (train labels)", "trials": trials, "call_cost": pick["call_cost"]}


def _call_cost(text: str) -> str:
    """``auto`` or a number in [0, 1] (argparse type: a typo is a usage error, not a traceback an hour in)."""
    if text != "auto" and not 0.0 <= float(text) <= 1.0:
        raise ValueError(text)
    return text


def _escalated_only(result: dict | None) -> bool:
    """A supervisor call with no open dispute behind it (every disagreement settled by the record, if any):
    spent by the escalation budget (escalation.py)."""
    r = result or {}
    return bool(r.get("supervisor_calls")) and set(r.get("disagreements", [])) <= set(r.get("trusted", []))


def zero_shot(sw: Shelfwise, role: str, ids: list[str], job: str, state: dict) -> dict:
    """One model alone, no learnings; predictions kept in the job table (resumable)."""
    tracker = JobTracker(sw.db, job)
    gen = LLMGenerator(sw.llm(role), name=role)
    start = time.perf_counter()
    todo = tracker.pending(ids)
    for k, pid in enumerate(todo):
        with sw.db.session() as s:
            cat = Catalog(s)
            p = cat.get(pid)
            listing = Listing(id=p.id, title=p.title, category_path=p.category_path)
            try:
                out = gen.extract(listing, cat.schema_for(p.category_path), []).values
            except ShelfwiseError as exc:  # a failed call is a miss, as in the paper's protocol
                log(f"{job}: {pid} failed: {exc}")
                out = {}
            tracker.mark(s, pid, "done", result={"values": out})
        if k % 10 == 0:
            log(f"{job}: {k + 1}/{len(todo)}")
    state[f"{job}_seconds"] = state.get(f"{job}_seconds", 0.0) + time.perf_counter() - start
    return {pid: (r or {}).get("values", {}) for pid, r in tracker.results().items()}


def overhead(n: int = 300, repeats: int = 3) -> dict:
    """Products/s of the loop itself, with ScriptedBackend doubles (model time ~0). Wall-clock rate (median
    and best of ``repeats`` runs) and the process's CPU-time rate, which a loaded machine distorts less; the
    load average is recorded with them."""
    import statistics
    import tempfile

    sys.path.insert(0, str(ROOT / "tests" / "enrich"))
    from doubles import make_app  # the ScriptedBackend doubles the unit tests use

    wall, cpu = [], []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as tmp:
            sw = make_app(Settings(home=Path(tmp), embedder=EmbedderConfig(backend="hashing"), llm_cache=False))
            ids = ingest(sw, [{"i": i, "title": f"Brewhaus Roast {i} K-Cup Pods, {i % 40 + 1} Count",
                               "category": "Coffee"} for i in range(n)], "o")
            loop = EnrichmentLoop(sw, LoopConfig())
            loop.run_batch(ids[:20])  # warm-up: learnings exist, most products agree afterwards
            start, cpu0 = time.perf_counter(), time.process_time()
            loop.run_batch(ids[20:])
            wall.append((n - 20) / (time.perf_counter() - start))
            cpu.append((n - 20) / (time.process_time() - cpu0))
            sw.close()
    return {"wall_median": round(statistics.median(wall), 1), "wall_best": round(max(wall), 1),
            "cpu": round(statistics.median(cpu), 1), "products": n - 20, "repeats": repeats,
            "load_average": [round(x, 2) for x in os.getloadavg()]}


def _overhead_fields() -> dict:
    o = overhead()
    return {"loop_overhead_products_per_s": o["wall_median"], "loop_overhead": o}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--home", type=Path, default=ROOT / "benchmarks" / ".cache" / "enrich_oamine")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--per-round", type=int, default=12)
    ap.add_argument("--test-n", type=int, default=40)
    ap.add_argument("--full", action="store_true", help="all of train in the rounds and all of test")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--categories", default="", help="comma-separated OA-Mine categories (default: all ten)")
    ap.add_argument("--backend", default="local")
    ap.add_argument("--model", default="qwen2.5-coder-0.5b", help="worker roles (generator, evaluator, memory)")
    ap.add_argument("--supervisor-model", default="qwen2.5-coder-1.5b")
    ap.add_argument("--alt-model", default="qwen2.5-coder-1.5b",
                    help="the panel's second generator (role worker.generator.alt); 'none' = one generator")
    ap.add_argument("--base-url", default=None)
    ap.add_argument("--embedder", default="local")
    ap.add_argument("--threads", type=int, default=2, help="llama.cpp threads (1 is faster on a busy machine)")
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds per model call (shared CPUs are slow)")
    ap.add_argument("--supervisor-steps", type=int, default=1, help="1 = answer at once (no tool calls)")
    ap.add_argument("--stop-after-rounds", action="store_true",
                    help="write the results with the learning rounds only (test: null) and stop")
    ap.add_argument("--supervisor-examples", type=int, default=LoopConfig().supervisor_examples,
                    help="worked examples in the supervisor's prompt (LoopConfig.supervisor_examples)")
    ap.add_argument("--test-batch", default="test-full-loop",
                    help="batch id of the full-loop test run (a new id re-runs (c) on the same frozen KB)")
    ap.add_argument("--test-every", type=int, default=1,
                    help="use every k-th product of the (category-sorted) test sample: a smaller, still stratified set")
    ap.add_argument("--audit-rulings", type=float, default=0.5,
                    help="learning rounds: share of confident supervisor rulings the simulated expert also audits "
                         "(LoopConfig.audit_rulings); its answers are what the track record learns from")
    ap.add_argument("--audit-settled", type=float, default=0.0,
                    help="learning rounds: share of disputes the track record settled that the simulated expert "
                         "also audits (LoopConfig.audit_settled), so the record keeps getting answers")
    ap.add_argument("--no-trust", action="store_true", help="never settle a dispute from the track record")
    ap.add_argument("--span-conventions", action="store_true",
                    help="read two nested values as one where a learned span convention holds "
                         "(TrustConfig.span_conventions; off by default)")
    ap.add_argument("--bench-below", type=float, default=0.0,
                    help="TrustConfig.bench_below: leave a generator out of a category's panel once its confirmed "
                         "record there is at or below this and another generator's is clearly better (0 = never)")
    ap.add_argument("--call-cost", default="auto", type=_call_cost,
                    help="TrustConfig.call_cost of the loop: accuracy per dispute given up to save a supervisor "
                         "call; 'auto' learns with 0 and chooses the test loop's cost on --select-n held-out "
                         "TRAIN products (select_call_cost)")
    ap.add_argument("--call-cost-grid", default="0,0.1,0.2,0.3,0.5,1", help="costs tried by --call-cost auto")
    ap.add_argument("--select-n", type=int, default=16, help="held-out train products of --call-cost auto")
    ap.add_argument("--probe-only", type=int, default=0, metavar="N",
                    help="only extract N held-out TRAIN products (never in the rounds' sample) with the frozen "
                         "KB in --home, and report their disagreement rate: in a fresh home that is the "
                         "no-learning baseline, in a copy of a home after its rounds the learned state — the same "
                         "products both times, so the difference is the learnings' effect, not the product mix")
    ap.add_argument("--probe-batch", default="probe", help="batch id of --probe-only (resumable)")
    ap.add_argument("--no-screen", action="store_true",
                    help="vote on every generator value (no screening by confirmed/rejected values and shapes)")
    ap.add_argument("--overhead-only", action="store_true", help="measure the loop overhead, print it, exit")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "enrich_oamine.json")
    args = ap.parse_args()
    if args.probe_only and args.out == ap.get_default("out"):
        ap.error("--probe-only needs --out (it never overwrites benchmarks/results/enrich_oamine.json)")
    if args.overhead_only:
        print(json.dumps(overhead()))
        return
    folder = args.data / "oa-mine-extractgpt"
    # Read before the first model call: a run takes an hour, and the commit is the code that was loaded.
    commit = head_commit()
    args.home.mkdir(parents=True, exist_ok=True)
    state_path = args.home / "state.json"
    state = json.loads(state_path.read_text()) if state_path.exists() else {"rounds": []}
    sw = Shelfwise.open(settings_for(args, args.home))

    only = {c.strip() for c in args.categories.split(",") if c.strip()}
    train = [r for r in read_rows(folder / "train.jsonl", labels=True) if not only or r["category"] in only]
    per_round = len(train) // args.rounds if args.full else args.per_round
    sample = stratified(train, per_round * args.rounds, args.seed)
    train_ids = ingest(sw, sample, "train")
    train_gold = {f"train-{r['i']}": r["gold"] for r in sample}
    category_of = {f"train-{r['i']}": r["category"] for r in sample}
    panel = ("worker.generator",) if args.alt_model == "none" else ("worker.generator", "worker.generator.alt")
    auto_cost = args.call_cost == "auto"
    trust = TrustConfig(enabled=not args.no_trust, span_conventions=args.span_conventions,
                        call_cost=0.0 if auto_cost else float(args.call_cost), bench_below=args.bench_below)
    loop = EnrichmentLoop(sw, LoopConfig(supervisor_steps=args.supervisor_steps, generator_roles=panel,
                                         supervisor_examples=args.supervisor_examples, trust=trust,
                                         audit_rulings=args.audit_rulings, audit_settled=args.audit_settled,
                                         screen=not args.no_screen))
    used = {r["i"] for r in sample}
    held_out = [r for r in train if r["i"] not in used]
    if args.probe_only:
        probe(args, sw, loop.config, held_out, commit)
        return
    done_rounds = {r["round"] for r in state["rounds"]}
    for rnd in range(1, args.rounds + 1):
        if rnd in done_rounds:
            continue
        ids = sorted(train_ids[(rnd - 1) * per_round: rnd * per_round], key=lambda p: category_of[p])
        t0 = time.perf_counter()
        report = loop.run_batch(ids, batch_id=f"round-{rnd}",
                                on_product=lambda r, rnd=rnd: log(f"round {rnd}: {r.product_id} "
                                                         f"disagreements={r.disagreements}"))
        _results, preds, escalated = batch_outcome(sw, f"round-{rnd}")
        f1 = score(preds, {pid: train_gold[pid] for pid in ids})["f1"]
        answered = expert_answers(sw, train_gold)
        audited = expert_audit(sw, train_gold, {f"train-{r['i']}": r["title"] for r in sample})
        with sw.db.session() as s:
            n_learn = len(KnowledgeBase(s).list(status="active"))
        state["rounds"].append({
            "round": rnd, "products": report.products, "disagreement_rate": round(report.disagreement_rate, 4),
            "disagreements": report.disagreements, "settled_by_track_record": report.trusted,
            "agreed_by_span_convention": report.conventions, "screened_by_kb": report.screened, "products_with_a_benched_generator": report.benched,
            "supervisor_calls": report.supervisor_calls,
            "tokens": report.tokens, "seconds": round(report.seconds, 1), "wall_seconds": round(time.perf_counter() - t0, 1),
            "f1": f1, "escalated_without_disagreement": escalated, "reviews_answered_by_simulated_expert": answered,
            "learnings_corrected_by_simulated_expert_audit": audited, "active_learnings": n_learn,
            "load_average": [round(x, 2) for x in os.getloadavg()]})
        state_path.write_text(json.dumps(state, indent=1))
        log(f"round {rnd}: {state['rounds'][-1]}")

    if args.stop_after_rounds:
        partial = {"commit": commit, "models": {r: sw.settings.roles[r].model for r in sorted(sw.settings.roles)},
                   "categories": sorted(only) or "all", "n_train": len(train_ids), "n_test": 0,
                   "supervisor_steps": args.supervisor_steps, "rounds": state["rounds"],
                   "disagreement_trend": disagreement_trend(state["rounds"]), "test": None,
                   **_overhead_fields(), "products_per_min": None,
                   "note": "stopped after the learning rounds (--stop-after-rounds): no test figures"}
        args.out.write_text(json.dumps(partial, indent=1) + "\n")
        log(json.dumps(partial["rounds"]))
        return

    # -- frozen knowledge base, test sample ------------------------------------------------------------
    test_rows = [r for r in read_rows(folder / "test.jsonl", labels=False) if not only or r["category"] in only]
    test_sample = test_rows if args.full else stratified(test_rows, args.test_n, args.seed)
    test_sample = sorted(test_sample, key=lambda r: r["category"])  # prompt-prefix reuse, see above
    test_ids = ingest(sw, test_sample, "test")[::args.test_every]
    single = zero_shot(sw, "worker.generator", test_ids, "bench:single", state)
    state_path.write_text(json.dumps(state, indent=1))
    sup = zero_shot(sw, "supervisor", test_ids, "bench:supervisor", state)
    state_path.write_text(json.dumps(state, indent=1))
    # The panel's second generator alone, zero-shot: when it is the supervisor's model, (b) is exactly that run
    # (same model, same generator prompt), so it is not repeated.
    alt = {} if len(panel) < 2 else sup if args.alt_model == args.supervisor_model else \
        zero_shot(sw, "worker.generator.alt", test_ids, "bench:single-alt", state)
    state_path.write_text(json.dumps(state, indent=1))
    if auto_cost:  # chosen on held-out train products once, kept in the state (a resumed run keeps the choice)
        if "call_cost_selection" not in state:
            grid = [float(x) for x in args.call_cost_grid.split(",") if x.strip()]
            state["call_cost_selection"] = select_call_cost(sw, loop.config, stratified(held_out, args.select_n,
                                                                                        args.seed + 1), grid)
            state_path.write_text(json.dumps(state, indent=1))
        trust = trust.model_copy(update={"call_cost": state["call_cost_selection"]["call_cost"]})
        log(f"call cost chosen on held-out train products: {trust.call_cost}")
    frozen = EnrichmentLoop(sw, LoopConfig(learn=False, review_below=0.0, supervisor_steps=args.supervisor_steps,
                                           generator_roles=panel, trust=trust, screen=not args.no_screen,
                                           supervisor_examples=args.supervisor_examples))
    t0 = time.perf_counter()
    frozen.run_batch(test_ids, batch_id=args.test_batch,
                     on_product=lambda r: log(f"test: {r.product_id} disagreements={r.disagreements}"))
    seconds_key = "full_seconds" if args.test_batch == "test-full-loop" else f"{args.test_batch}_seconds"
    state[seconds_key] = state.get(seconds_key, 0.0) + time.perf_counter() - t0
    state_path.write_text(json.dumps(state, indent=1))
    full_res, full, full_escalated = batch_outcome(sw, args.test_batch)
    full_calls = sum((r or {}).get("supervisor_calls", 0) for r in full_res.values())
    full_trusted = sum(len((r or {}).get("trusted", [])) for r in full_res.values())
    full_screened = sum(len((r or {}).get("screened", [])) for r in full_res.values())
    full_conventions = sum(len((r or {}).get("conventions", [])) for r in full_res.values())
    with sw.db.session() as s:
        track = [r.model_dump() for r in TrackRecord.from_reviews(s, trust).rows() if not r.category_path]

    # Only now are the test labels read.
    labels = {f"test-{r['i']}": r["gold"] for r in read_rows(folder / "test.jsonl", labels=True)}
    gold = {pid: labels[pid] for pid in test_ids}
    result = {
        "commit": commit,
        "models": {role: sw.settings.roles[role].model for role in sorted(sw.settings.roles)},
        "protocol": "ExtractGPT exact-match P/R/F1 (%) over attribute-value pairs; simulated expert answers "
                    "review items from TRAIN labels during learning only",
        "categories": sorted(only) or "all", "n_train": len(train_ids), "n_test": len(test_ids),
        "supervisor_steps": args.supervisor_steps, "supervisor_budget": LoopConfig().supervisor_budget,
        "generator_panel": [sw.settings.roles[r].model for r in panel],
        "rounds": state["rounds"],
        "disagreement_trend": disagreement_trend(state["rounds"]),
        "test": {
            "single_worker": score(single, gold),
            **({"single_worker_alt": score(alt, gold)} if alt else {}),
            "supervisor_only": {**score(sup, gold), "supervisor_calls": sum(1 for p in test_ids if p in sup)},
            "full_loop": {**score(full, gold), "supervisor_calls": full_calls,
                          "escalated_without_disagreement": full_escalated,
                          "settled_by_track_record": full_trusted, "agreed_by_span_convention": full_conventions,
                          "screened_by_kb": full_screened},
        },
        "audit_rulings": args.audit_rulings, "audit_settled": args.audit_settled, "trust": trust.model_dump(), "track_record_overall": track,
        **({"call_cost_selection": state["call_cost_selection"]} if auto_cost else {}),
        **_overhead_fields(),
        "products_per_min": round(len(test_ids) / max(1e-9, state[seconds_key]) * 60, 2),
        "test_batch": args.test_batch, "supervisor_examples": args.supervisor_examples,
        "machine": "2-core CPU, 24 GiB, no GPU (shared with other jobs)",
        "test_seconds": {k: round(state.get(k, 0.0), 1) for k in ("bench:single_seconds", "bench:supervisor_seconds",
                                                                   seconds_key)},
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
    }
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    log(json.dumps(result["test"]))
    sw.close()


if __name__ == "__main__":
    main()
