"""Demo step "Understand": a tiny intent graph from synthesised shopper behaviour on the demo catalog.

A handful of purchase events with queries (and shared sessions, hence co-purchases) are logged, the graph is
built with the embedded ``graph.generator`` model, and a few edges, the cascade table and a navigation tree
for "camping" are shown; the graph is then registered as the app's intent source for the search step."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.table import Table

from ..store import EventLog
from ..store.events import Purchase
from .behaviour import catalog_products, pairs_from_events
from .navigate import SessionInput, navigation_tree, recommend, render_tree
from .pipeline import BuildConfig, build_graph
from .serving import register
from .store import GraphStore

if TYPE_CHECKING:
    from rich.console import Console

    from ..app import Shelfwise

__all__ = ["DEMO_PURCHASES", "run_demo"]

# (session, product, query): what shoppers searched and bought; same session = bought together.
DEMO_PURCHASES: tuple[tuple[str, str, str | None], ...] = (
    ("s1", "cmp-001", "camping"),
    ("s1", "cmp-002", "camping"),
    ("s2", "cmp-003", "winter camping"),
    ("s2", "sho-008", "winter boots"),
    ("s3", "ele-005", "action camera"),
    ("s3", "ele-006", None),
    ("s4", "sho-005", "shoes for nurses"),
)


def run_demo(sw: Shelfwise, console: Console) -> None:
    with sw.db.session() as s:
        log = EventLog(s)
        for i, (session, pid, query) in enumerate(DEMO_PURCHASES):
            log.append(Purchase(product_id=pid, query=query, session_id=f"demo-{session}"),
                       idempotency_key=f"graph-demo-purchase-{i}")
    with sw.db.session() as s:
        pairs, products = pairs_from_events(s), catalog_products(s)
    console.print(f"{len(pairs)} behaviour pairs from the event log "
                  f"({sum(p.kind == 'co_buy' for p in pairs)} co-purchases); generating with "
                  f"{sw.llms.backend_for('graph.generator').model} …")
    report = build_graph(sw, pairs, products, BuildConfig(job="demo.graph", candidates_per_pair=4),
                         on_pair=lambda p: console.print(f"  [dim]{p.key}[/]"), source="demo")
    table = Table("stage", "in", "dropped", "kept", "why", title="refinement cascade")
    for st in report.cascade:
        table.add_row(st.stage, str(st.n_in), str(st.dropped), str(st.kept),
                      st.note or ", ".join(f"{k}: {v}" for k, v in st.reasons.items()))
    console.print(table)
    with sw.db.session() as s:
        edges = GraphStore(s).edges(limit=10)
    edge_table = Table("head", "relation", "intent", "support", title="intent edges (first 10)")
    for e in edges:
        edge_table.add_row(e["head"], e["relation"], e["intent"], str(e["support"]))
    console.print(edge_table)
    source = register(sw)
    source.cache.warm(sorted({q for _, _, q in DEMO_PURCHASES if q}))
    console.print(render_tree(navigation_tree(sw.db, sw.embedder, "camping")))
    rec = recommend(sw.db, source, SessionInput(product_ids=["cmp-003"]), k=3)
    console.print("session (cmp-003) → intents " + ", ".join(i for i, _ in rec["intents"][:3]) + "; recommend "
                  + ", ".join(f"{r['product_id']} (because {r['because']})" for r in rec["recommendations"]))
