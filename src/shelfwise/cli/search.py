"""Search commands: ``shelfwise index``, ``shelfwise search``, ``shelfwise search-learn`` and the shopper
feedback commands ``shelfwise feedback click|add-to-cart|purchase``."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from ..config import MAX_RERANK_DEPTH
from ..errors import InputError
from ._common import console, feedback_app, handle_errors, open_app

__all__ = ["register"]

MAX_WINDOW_MINUTES = 60 * 24 * 366 * 10  # a decade; beyond, the date arithmetic overflows


def _service():  # type: ignore[no-untyped-def]
    from ..search import SearchService

    return SearchService(open_app())


def index(
    rebuild: Annotated[bool, typer.Option("--rebuild", help="rebuild from scratch instead of updating")] = False,
) -> None:
    """Build or update the search index from the catalog (only changed products are re-indexed)."""
    svc = _service()
    with handle_errors():
        exists = (svc.directory / "manifest.json").exists()
        if rebuild or not exists:
            report = svc.build_index()
            console.print(f"indexed [bold]{report['products']}[/] products "
                          f"({report['predicted_queries']} predicted queries) in {report['seconds']:.1f}s")
        else:
            report = svc.sync()  # a corrupt index raises IndexStateError naming --rebuild
            console.print(f"index updated: {report['updated']} re-indexed, {report['deleted']} removed, "
                          f"{report['unchanged']} unchanged")
    svc.sw.close()


def search(
    query: Annotated[str, typer.Argument(help="what the shopper typed")],
    k: Annotated[int, typer.Option("-k", min=1, max=200, help="number of results")] = 10,
    explain: Annotated[bool, typer.Option("--explain", help="show strategies, features and graph edges")] = False,
    segment: Annotated[str | None, typer.Option(help="user segment (a bandit context feature)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the result as JSON")] = False,
    rerank: Annotated[int | None, typer.Option(
        min=0, max=MAX_RERANK_DEPTH, help="re-score this many top results with the cross-encoder (~10 ms each; default: "
                             "settings search_reranker.depth, off unless set; 0 = off)")] = None,
) -> None:
    """Search the catalog. Every search is logged with its decision id (use it for feedback)."""
    from ..search import SearchContext

    svc = _service()
    with handle_errors():
        result = svc.search(query, k, context=SearchContext(user_segment=segment), explain=explain, rerank=rerank)
    if as_json:
        from dataclasses import asdict

        console.print_json(json.dumps(asdict(result), default=str))
        svc.sw.close()
        return
    # Catalog text is data, not Rich markup: "Socks [pack of 3]" must print as is, "[/]" must not crash.
    console.print(f"decision [bold]{result.decision_id}[/]  arm [cyan]{result.arm}[/] {escape(str(result.mix))} "
                  f"p={result.propensity:.2f}  ranker {result.ranker}  {result.n_candidates} candidates")
    if explain and result.slots:
        console.print("understood: " + escape(", ".join(f"{s['field']}={s['value']} ({s['source']}, {s['weight']})"
                                                         for s in result.slots)))
    reranked = any(h.rerank_score is not None for h in result.hits)
    table = Table("#", "product", "title", "score", *(["cross-encoder"] if reranked else []),
                  *(["found by (rank)", "features", "edges"] if explain else []))
    for hit in result.hits:
        row = [str(hit.position), escape(hit.product_id), escape(hit.title[:60]), f"{hit.score:.3f}"]
        if reranked:
            row.append("-" if hit.rerank_score is None else f"{hit.rerank_score:.2f}")
        if explain:
            row += [escape(", ".join(f"{s}({r})" for s, r in hit.found_by.items())),
                    escape(", ".join(f"{n}={v:g}" for n, v in list(hit.features.items())[:8])),
                    ",".join(map(str, hit.edges)) or "-"]
        table.add_row(*row)
    console.print(table)
    svc.sw.close()


def search_learn(
    judgements: Annotated[Path | None, typer.Option(help="JSON {query: {product_id: 0..3}} graded labels",
                                                    exists=True, dir_okay=False)] = None,
    window_minutes: Annotated[float, typer.Option(min=0, max=MAX_WINDOW_MINUTES,
                                                  help="feedback window before a decision is learned")] = 30.0,
) -> None:
    """Learn from the event log (bandit, memory index, click-trained ranker) or from graded judgements."""
    svc = _service()
    with handle_errors():
        if judgements is not None:
            try:
                data = json.loads(judgements.read_text())
            except json.JSONDecodeError as exc:
                raise InputError(f"{judgements} is not JSON ({exc.msg})",
                                 fix='write {"query": {"product-id": 0..3, ...}, ...}') from exc
            except UnicodeDecodeError as exc:
                raise InputError(f"{judgements} is not UTF-8 text", fix="save the judgements as UTF-8 JSON") from exc
            console.print(svc.train_ranker(data))  # InputError naming the format if the shape is wrong
        else:
            console.print(svc.learn(feedback_window=timedelta(minutes=window_minutes)))
    svc.sw.close()


def _feedback(kind: str):  # type: ignore[no-untyped-def]
    def command(
        product_id: Annotated[str, typer.Argument(help="the product the shopper acted on")],
        decision: Annotated[str, typer.Option("--decision", help="decision id printed by `shelfwise search`")],
        position: Annotated[int | None, typer.Option(help="0-based position on the page (checked)")] = None,
        quantity: Annotated[int, typer.Option(min=1, help="units bought (purchase only)")] = 1,
    ) -> None:
        svc = _service()
        with handle_errors():
            event_id = svc.feedback(kind, product_id, decision, position=position, quantity=quantity)
        console.print(f"recorded {kind.replace('_', '-')} on {escape(product_id)} (event {event_id})")
        svc.sw.close()

    command.__doc__ = f"Record a shopper's {kind.replace('_', ' ')} on a search result."
    return command


def register(app: typer.Typer) -> None:
    app.command("index")(index)
    app.command("search")(search)
    app.command("search-learn")(search_learn)
    for kind in ("click", "add_to_cart", "purchase"):
        feedback_app.command(kind.replace("_", "-"))(_feedback(kind))
