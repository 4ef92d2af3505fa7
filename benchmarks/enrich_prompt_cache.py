"""Throughput of the enrich loop with and without the embedded models' prompt-state cache
(``Settings.llm_prompt_cache_mb``), with the response cache off so every call runs.

    HF_HUB_OFFLINE=1 taskset -c 0 .venv/bin/python benchmarks/enrich_prompt_cache.py --cache-mb 0 &
    HF_HUB_OFFLINE=1 taskset -c 1 .venv/bin/python benchmarks/enrich_prompt_cache.py --cache-mb 512

Run both settings at the same time, one core each, so they share the machine's state. Each run extracts
the same ``--n`` OA-Mine train products (Coffee and Shoes, stratified, ``--seed``) with the loop frozen (no
learning, no review), in a fresh home under /tmp, with ``--threads`` llama.cpp threads (default 1). Writes its row into
benchmarks/results/enrich_prompt_cache.json (keyed by the cache size, with the commit) and the extracted
values into the home, to compare outputs between settings.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import enrich_oamine as bench
from _common import head_commit

from shelfwise.app import Shelfwise
from shelfwise.config import Settings
from shelfwise.enrich import EnrichmentLoop, LoopConfig
from shelfwise.store import JobTracker


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--cache-mb", type=int, required=True)
    ap.add_argument("--n", type=int, default=6)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--threads", type=int, default=1, help="llama.cpp threads (2: the products/minute on 2 cores)")
    ap.add_argument("--models", default="/tmp/enrich-panel/models",
                    help="a folder with the assembled GGUF files (saves re-assembling them per home)")
    args = ap.parse_args()
    commit = head_commit()
    rows = bench.read_rows(Path(args.data) / "oa-mine-extractgpt" / "train.jsonl", labels=False)
    rows = bench.stratified([r for r in rows if r["category"] in ("Coffee", "Shoes")], args.n, args.seed)
    key = str(args.cache_mb) if args.threads == 1 else f"{args.cache_mb}/threads={args.threads}"
    home = Path(f"/tmp/enrich-prompt-cache-{key.replace('/', '-')}")
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir()
    if Path(args.models).is_dir():
        (home / "models").symlink_to(args.models)
    sw = Shelfwise.open(Settings(home=home, llm_cache=False, llm_threads=args.threads, llm_prompt_cache_mb=args.cache_mb))
    ids = sorted(bench.ingest(sw, rows, "train"))
    loop = EnrichmentLoop(sw, LoopConfig(learn=False, review_below=0.0, audit_rulings=0.0))
    t0 = time.perf_counter()
    report = loop.run_batch(ids, batch_id="throughput")
    seconds = time.perf_counter() - t0
    values = {p: (r or {}).get("values", {}) for p, r in JobTracker(sw.db, "enrich:throughput").results().items()}
    (home / "values.json").write_text(json.dumps(values, indent=1, sort_keys=True))
    row = {"commit": commit, "products": len(ids), "seconds": round(seconds, 1),
           "seconds_per_product": round(seconds / len(ids), 1),
           "products_per_min": round(len(ids) / seconds * 60, 2), "threads": args.threads, "supervisor_calls": report.supervisor_calls,
           "disagreements": report.disagreements, "values": str(home / "values.json"),
           "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    out = ROOT / "benchmarks" / "results" / "enrich_prompt_cache.json"
    results = json.loads(out.read_text()) if out.exists() else {}
    results[key] = row
    out.write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps(row), flush=True)
    sw.close()


if __name__ == "__main__":
    main()
