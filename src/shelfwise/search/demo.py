"""The search step of ``make demo``: index the demo catalog, run three queries with explanations, one of them
again through the optional cross-encoder stage, then show one round of learning from a (scripted) shopper's
click."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from rich.table import Table

from .query import SearchContext
from .service import SearchService

if TYPE_CHECKING:
    from rich.console import Console

    from ..app import Shelfwise

__all__ = ["DEMO_QUERIES", "run_demo"]

DEMO_QUERIES = ("espresso beans", "waterproof shoes for hiking", "keep warm while camping in winter")


def _table(result, title: str) -> Table:  # type: ignore[no-untyped-def]
    reranked = any(h.rerank_score is not None for h in result.hits)
    table = Table("#", "product", "title", "found by (rank)", "top features", "graph edges",
                  *(["cross-encoder"] if reranked else []), title=title)
    for hit in result.hits:
        feats = sorted(((n, v) for n, v in hit.features.items() if not n.startswith("q_")),
                       key=lambda kv: -abs(kv[1]))[:4]
        table.add_row(str(hit.position), hit.product_id, hit.title[:48],
                      ", ".join(f"{s}({r})" for s, r in hit.found_by.items()),
                      ", ".join(f"{n}={v:.2f}" for n, v in feats), ",".join(map(str, hit.edges)) or "-",
                      *([f"{hit.rerank_score:.2f}" if hit.rerank_score is not None else "-"] if reranked else []))
    return table


def run_demo(sw: Shelfwise, console: Console) -> None:
    svc = SearchService(sw)
    report = svc.build_index()
    console.print(f"indexed {report['products']} products with {report['predicted_queries']} predicted "
                  f"(doc2query-style) queries in {report['seconds']:.1f}s; intent source: "
                  f"{'graph' if sw.providers.intents is not None else 'none'}")
    for query in DEMO_QUERIES:
        result = svc.search(query, k=5, explain=True, context=SearchContext(user_segment="demo"))
        slots = ", ".join(f"{s['field']}={s['value']}" for s in result.slots[:4]) or "none"
        console.print(f"\n[bold]{query!r}[/]: bandit chose [cyan]{result.arm}[/] {result.mix} "
                      f"(propensity {result.propensity:.2f}); ranker {result.ranker}; understood: {slots}")
        console.print(_table(result, f"decision {result.decision_id}"))
    # The optional second stage (off by default: ~10 ms of CPU a result): a cross-encoder re-scores the top 5.
    result = svc.search(DEMO_QUERIES[-1], k=5, explain=True, arm="broad", rerank=5)
    console.print(f"\n[bold]{DEMO_QUERIES[-1]!r}[/] with the cross-encoder over the top 5 (ranker {result.ranker})")
    console.print(_table(result, f"decision {result.decision_id}"))
    # A shopper clicks and buys the third result of the last query; learning replays the log.
    last = svc.search(DEMO_QUERIES[-1], k=5, arm="broad")
    chosen = last.hits[min(2, len(last.hits) - 1)]
    svc.feedback("click", chosen.product_id, last.decision_id)
    svc.feedback("purchase", chosen.product_id, last.decision_id)
    learned = svc.learn(feedback_window=timedelta(0))
    after = svc.search(DEMO_QUERIES[-1], k=5, arm="broad", explain=True)
    moved = [h.position for h in after.hits if h.product_id == chosen.product_id]
    console.print(f"\nafter a click + purchase on {chosen.product_id} (was #{chosen.position}) and learning "
                  f"{learned}: now #{moved[0] if moved else '-'}")
    console.print(_table(after, "same query after feedback"))
