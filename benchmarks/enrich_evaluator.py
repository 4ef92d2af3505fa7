"""How good and how fast is the critical evaluator? (OA-Mine train products, labels read for scoring only.)

The 1.5B generator reads each listing (zero-shot, no learnings); the evaluator is then asked about *every*
value it gave, and each answer is scored against the train labels: a flag on a value the labels confirm is a
false alarm, a flag on a value they do not hold is a catch. Run it at two commits to compare evaluator
prompts on the same values (its calls are cached by prompt hash in ``--home``, the generator's too).

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/enrich_evaluator.py --home /tmp/evalprobe --n 40

Writes ``benchmarks/results/enrich_evaluator.json`` (``--out``): per evaluator prompt version and model,
``values``, ``right_values``, ``false_alarm_rate`` (flags on right values), ``catch_rate`` (flags on values not
in the labels), ``seconds_per_call``, ``output_tokens_per_call``. The times average every uncached call of
that prompt and model the LLM layer logged in ``--home``: time a new setting in a fresh home, on an idle
machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from _common import ROOT, head_commit
from enrich_oamine import ingest, read_rows, settings_for, stratified
from sqlalchemy import select

from shelfwise.app import Shelfwise
from shelfwise.config import DEFAULT_ROLES
from shelfwise.enrich import install_schemas
from shelfwise.enrich.workers import EVALUATOR_PROMPT_VERSION, LLMEvaluator, LLMGenerator
from shelfwise.store import Catalog, Listing
from shelfwise.store.models import LLMCall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--home", type=Path, default=ROOT / "benchmarks" / ".cache" / "enrich_evaluator")
    ap.add_argument("--n", type=int, default=40, help="train products (category-stratified, seeded)")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--categories", default="Coffee,Shoes")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--evaluator-model", default=DEFAULT_ROLES["worker.evaluator"].model,
                    help="the model behind worker.evaluator (default: the role's default)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "enrich_evaluator.json")
    args = ap.parse_args()
    # the fields settings_for reads; the roles keep the embedded defaults
    args.backend, args.model, args.supervisor_model, args.alt_model = ("local", "qwen2.5-coder-0.5b",
                                                                       "qwen2.5-coder-1.5b", "qwen2.5-coder-1.5b")
    args.base_url, args.embedder, args.timeout = None, "local", 900.0
    settings = settings_for(args, args.home)
    roles = dict(settings.roles)
    roles["worker.evaluator"] = roles["worker.evaluator"].model_copy(update={"model": args.evaluator_model})
    settings = settings.model_copy(update={"roles": roles})

    commit = head_commit()
    cats = set(args.categories.split(","))
    rows = [r for r in read_rows(args.data / "oa-mine-extractgpt" / "train.jsonl", labels=True)
            if r["category"] in cats]
    sample = stratified(rows, args.n, args.seed)
    args.home.mkdir(parents=True, exist_ok=True)
    sw = Shelfwise.open(settings)
    with sw.db.session() as s:
        install_schemas(s)
    ids = ingest(sw, sample, "train")
    gold = {f"train-{r['i']}": r["gold"] for r in sample}
    generator = LLMGenerator(sw.llm("worker.generator.alt"), name="generator.alt", worked_examples=0)
    evaluator = LLMEvaluator(sw.llm("worker.evaluator"))

    right = flagged_right = wrong = flagged_wrong = 0
    examples = []
    for k, pid in enumerate(ids):
        with sw.db.session() as s:
            cat = Catalog(s)
            p = cat.get(pid)
            listing = Listing(id=p.id, title=p.title, category_path=p.category_path)
            schema = cat.schema_for(p.category_path)
        values = {a: v for a, v in generator.extract(listing, schema, []).values.items() if v}
        if not values:
            continue
        start = time.perf_counter()
        verdict = evaluator.check(listing, schema, values)
        elapsed = time.perf_counter() - start
        for attr, value in values.items():
            ok = value.strip() in {x.strip() for x in gold[pid].get(attr, {})}
            flag = attr in verdict.flags
            right, wrong = right + ok, wrong + (not ok)
            flagged_right, flagged_wrong = flagged_right + (ok and flag), flagged_wrong + (not ok and flag)
            if flag and len(examples) < 12:
                examples.append({"product": pid, "attribute": attr, "value": value, "labelled_right": ok,
                                 "reason": verdict.flags[attr]})
        print(f"{k + 1}/{len(ids)} {pid}: {len(values)} values, {len(verdict.flags)} flagged, {elapsed:.1f} s",
              flush=True)

    sw.recorder.flush()  # call records are written in batches
    with sw.db.session() as s:  # the evaluator's uncached calls of this prompt version, as the LLM layer logged them
        timed = s.execute(select(LLMCall.latency_ms, LLMCall.output_tokens).where(
            LLMCall.role == "worker.evaluator", LLMCall.model == args.evaluator_model,
            LLMCall.cached.is_(False), LLMCall.ok.is_(True),
            LLMCall.prompt_id == f"enrich.evaluate.{EVALUATOR_PROMPT_VERSION}")).all()
    seconds = [ms / 1000 for ms, _ in timed]
    out_tokens = [n for _, n in timed]
    figures = {
        "values": right + wrong, "right_values": right,
        "false_alarm_rate": round(flagged_right / right, 4) if right else None,
        "catch_rate": round(flagged_wrong / wrong, 4) if wrong else None,
        "calls_timed": len(seconds),
        "seconds_per_call": round(statistics.mean(seconds), 2) if seconds else None,
        "output_tokens_per_call": round(statistics.mean(out_tokens), 1) if out_tokens else None,
        "examples": examples,
    }
    result = json.loads(args.out.read_text()) if args.out.exists() else {}
    result.setdefault("protocol", __doc__.split("\n\n")[1].replace("\n", " "))
    result.setdefault("runs", {})[f"{EVALUATOR_PROMPT_VERSION} {args.evaluator_model}"] = {
        "commit": commit, "n_products": len(ids), "categories": sorted(cats), "seed": args.seed,
        "threads": args.threads, "evaluator_model": args.evaluator_model, **figures}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
