"""Knowledge-base overhead, model time excluded: how fast the loop can ask for the learnings of a product,
fold values through the normalisers, and place new learnings with the deterministic guards.

    .venv/bin/python benchmarks/kb_overhead.py [--learnings 2000] [--embedder hashing|local] [--db URL]

Writes benchmarks/results/kb_overhead.json (with the commit)."""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

from _common import head_commit

from shelfwise.config import EmbedderConfig
from shelfwise.enrich.kb import KnowledgeBase, LearningDraft
from shelfwise.llm.embed import make_embedder
from shelfwise.store.db import Database

ROOT = Path(__file__).resolve().parents[1]
TOPS = ["Grocery", "Shoes", "Electronics", "Sports", "Home", "Beauty", "Toys", "Office", "Garden", "Pets"]
ATTRS = ["brand", "color", "size", "material", "item_form", "flavor", "pack_size", "model"]


def categories(rng: random.Random) -> list[str]:
    return [f"{top} > Sub{j}" + (f" > Leaf{k}" if k else "") for top in TOPS for j in range(5) for k in range(3)]


def draft(rng: random.Random, cats: list[str], i: int) -> LearningDraft:
    cat, attr = rng.choice(cats), rng.choice(ATTRS)
    word = f"term{i}"
    return LearningDraft(category_path=cat, attribute=attr,
                         text=f"In {cat.split(' > ')[-1]}, '{word}' in a title is the {attr}; rule {i} with "
                              f"{rng.choice(['pods', 'mesh', 'steel', 'cotton', 'oz', 'pack'])} details.",
                         examples=[f"... {word} ... -> {attr}={word.upper()}"], normalize={word: word.upper()})


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--learnings", type=int, default=2000)
    ap.add_argument("--queries", type=int, default=3000)
    ap.add_argument("--embedder", default="hashing", choices=["hashing", "local"])
    ap.add_argument("--db", default=None, help="SQLAlchemy URL (default: a temporary SQLite file)")
    args = ap.parse_args()
    rng = random.Random(7)
    cats = categories(rng)
    tmp = tempfile.mkdtemp()
    db = Database(args.db or f"sqlite:///{tmp}/kb.db")
    db.migrate()
    embedder = make_embedder(EmbedderConfig(backend=args.embedder))
    embedder.embed(["warm up"])
    out: dict = {"learnings": args.learnings, "embedder": embedder.name, "db": db.dialect}
    with db.session() as s:
        kb = KnowledgeBase(s, embedder=embedder)
        actions: dict[str, int] = {}
        t0 = time.perf_counter()
        for i in range(args.learnings):
            p = kb.add(draft(rng, cats, i))
            actions[p.action] = actions.get(p.action, 0) + 1
        add_s = time.perf_counter() - t0
    out |= {"placements_per_s": round(args.learnings / add_s, 1), "placement_actions": actions}
    with db.session() as s:
        kb = KnowledgeBase(s, embedder=embedder)
        # Each category has a fixed schema (4 attributes), as in the loop.
        schema = {c: random.Random(c).sample(ATTRS, 4) for c in cats}
        injected = 0
        t0 = time.perf_counter()
        for _ in range(args.queries):  # cold: every call goes to the database
            kb.refresh()
            cat = rng.choice(cats)
            injected += len(kb.relevant(cat + " > Item", schema[cat], max_items=12, max_tokens=400))
        rel_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        for _ in range(args.queries):  # warm: the session cache answers repeated categories
            cat = rng.choice(cats)
            kb.relevant(cat + " > Item", schema[cat], max_items=12, max_tokens=400)
        warm_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        for _ in range(args.queries):
            kb.refresh()
            kb.normalizers(rng.choice(cats), rng.choice(ATTRS))
        norm_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        for _ in range(args.queries):
            kb.record_injection([rng.randint(1, args.learnings) for _ in range(6)])
        count_s = time.perf_counter() - t0
    out |= {"relevant_cold_per_s": round(args.queries / rel_s, 1),
            "relevant_warm_per_s": round(args.queries / warm_s, 1), "mean_learnings_injected": round(injected / args.queries, 2),
            "normalizers_cold_per_s": round(args.queries / norm_s, 1), "record_injection_per_s": round(args.queries / count_s, 1)}
    commit = head_commit()
    dest = ROOT / "benchmarks" / "results" / "kb_overhead.json"
    results = json.loads(dest.read_text()) if dest.exists() else {}
    results.setdefault("runs", {})[f"{embedder.name}/{db.dialect}/{args.learnings}"] = out | {"commit": commit}
    results["commit"] = commit
    dest.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
