"""``shelfwise graph build | show | annotate | train | stats | relations | cache``, ``navigate``, ``recommend``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer
from pydantic import ValidationError
from rich.table import Table

from ..errors import InputError, LLMError
from ._common import console, err_console, fail, handle_errors, open_app, progress

graph_app = typer.Typer(no_args_is_help=True, help="The intent knowledge graph (why people buy things).")

__all__ = ["graph_app", "register"]


def _load_pairs(sw, source: str, data: Path):  # type: ignore[no-untyped-def]
    from ..graph import catalog_products, load_esci, load_intentionqa, pairs_from_events, pairs_from_file

    if source == "events":
        with sw.db.session() as s:
            return pairs_from_events(s), catalog_products(s)
    if source == "intentionqa":
        return load_intentionqa(data)
    if source == "esci":
        return load_esci(data)
    path = Path(source)
    if not path.exists():
        raise InputError(f"unknown pair source {source!r}", fix="use events, intentionqa, esci or a JSONL file path")
    pairs, errors = pairs_from_file(path)  # a directory or a non-UTF-8 file is an InputError
    for e in errors:
        err_console.print(f"[yellow]skipped[/] {e}")
    with sw.db.session() as s:
        return pairs, catalog_products(s)


@graph_app.command("build")
def build(
    source: Annotated[str, typer.Option(help="events | intentionqa | esci | path to a pairs JSONL")] = "events",
    data: Annotated[Path, typer.Option(help="public data folder")] = Path("../shared/data"),
    limit: Annotated[int | None, typer.Option(min=1, help="at most this many pairs (broad queries first)")] = None,
    job: Annotated[str, typer.Option(help="job name; rerun the same job to resume")] = "graph.build",
    workers: Annotated[int, typer.Option(min=1, help="generate over this many shards side by side")] = 1,
    executor: Annotated[Literal["local", "ray"], typer.Option(
        help="local (one process) | ray (a local or remote Ray cluster)")] = "local",
    ray_address: Annotated[str | None, typer.Option(help="join this Ray cluster ('auto', ray://host:10001)")
                           ] = None,
) -> None:
    """Generate intent knowledge from behaviour pairs and refine it into graph edges (resumable)."""
    from ..graph import BuildConfig, SamplingConfig, build_graph

    try:
        cfg = BuildConfig(job=job, sampling=SamplingConfig(max_pairs=limit), workers=workers, executor=executor,
                          ray_address=ray_address)
    except ValidationError as exc:  # options the CLI types cannot check (an empty --job, ...)
        err = exc.errors()[0]
        option = "--" + str(err["loc"][-1]).replace("_", "-") if err["loc"] else "an option"
        raise fail(InputError(f"{option}: {err['msg']}", fix="see `shelfwise graph build --help`"), 2) from None
    sw = open_app()
    with handle_errors():
        pairs, products = _load_pairs(sw, source, data)
        with progress() as bar:
            task = bar.add_task("generate", total=min(len(pairs), limit or len(pairs)))
            report = build_graph(sw, pairs, products, cfg, on_pair=lambda _p: bar.advance(task), source=source)
    console.print(f"{report.pairs_in} pairs in, {report.unknown_product_pairs} with unknown products, "
                  f"{report.pairs_sampled} sampled; dropped by sampling: {report.sampling_dropped or 'none'}")
    g = report.generation
    console.print(f"generated {g['candidates']} candidates for {g['pairs_done']} pairs "
                  f"({g['pairs_skipped']} already done, {g['pairs_failed']} failed)")
    for e in g["errors"]:
        err_console.print(f"[yellow]failed[/] {e}")
    table = Table("stage", "in", "dropped", "kept", "why")
    for st in report.cascade:
        table.add_row(st.stage, str(st.n_in), str(st.dropped), str(st.kept),
                      st.note or ", ".join(f"{k}: {v}" for k, v in st.reasons.items()))
    console.print(table)
    console.print(f"{report.edges_added} edges added; relation proposals: {report.relation_proposals or 'none'}")
    sw.close()
    if g["pairs_failed"] and not g["pairs_done"] and not g["pairs_skipped"]:
        raise fail(LLMError(f"generation failed for all {g['pairs_failed']} pairs (errors above)",
                            fix="check the graph.generator role (`shelfwise llm ping graph.generator`), then "
                            "rerun the same --job: failed pairs are retried"))


def edges_table(edges: list[dict], title: str = "intent edges") -> Table:
    table = Table("id", "head", "relation", "intent", "plaus.", "typ.", "support", title=title)
    for e in edges:
        fmt = lambda v: "-" if v is None else f"{v:.2f}"
        table.add_row(str(e["id"]), e["head"][:50], e["relation"], e["intent"], fmt(e["plausibility"]),
                      fmt(e["typicality"]), str(e["support"]))
    return table


@graph_app.command("show")
def show(
    limit: Annotated[int, typer.Option(help="edges to list")] = 20,
    product: Annotated[str | None, typer.Option(help="intents of this product")] = None,
    intent: Annotated[str | None, typer.Option(help="products of this intent")] = None,
) -> None:
    """List edges, a product's intents, or an intent's products."""
    from ..graph import GraphStore

    sw = open_app()
    with handle_errors(), sw.db.session() as s:
        store = GraphStore(s)
        if product:
            rows = store.intents_of_product(product, limit)
            table = Table("intent", "score", title=f"intents of {product}")
        elif intent:
            rows = store.products_of_intent(intent, limit)
            table = Table("product", "score", title=f"products for '{intent}'")
        else:
            console.print(edges_table(store.edges(limit)))
            return
        for name, score in rows:
            table.add_row(name, f"{score:.2f}")
        console.print(table)
    sw.close()


@graph_app.command("stats")
def stats() -> None:
    """Graph size, candidates per cascade stage, annotation agreement, cache tiers."""
    from ..graph import AnnotationQueue, GraphStore

    sw = open_app()
    with sw.db.session() as s:
        st = GraphStore(s).stats()
        agreement = AnnotationQueue(s).agreement()
    console.print_json(data={"graph": st, "annotation": agreement})
    sw.close()


@graph_app.command("annotate")
def annotate(
    annotator: Annotated[str, typer.Option(help="your name (two people per item, a third breaks ties)")] = "",
    sample: Annotated[int, typer.Option(help="queue this many new candidates first")] = 0,
    prelabel: Annotated[int, typer.Option(help="let the LLM judge pre-label this many items (machine labels)")] = 0,
    max_items: Annotated[int, typer.Option(help="stop after this many items")] = 20,
) -> None:
    """Answer five yes/no questions per candidate. Machine pre-labels are shown as such."""
    from sqlalchemy import select

    from ..graph import QUESTIONS, AnnotationQueue
    from ..graph.models import GraphAnnotation

    sw = open_app()
    with handle_errors():
        with sw.db.session() as s:
            if sample:
                console.print(f"queued {len(AnnotationQueue(s).sample(sample))} candidates")
        if prelabel:
            from ..graph.annotate import prelabel as prelabel_fn

            console.print(f"machine pre-labels: {prelabel_fn(sw.db, sw.llm('graph.generator'), prelabel)}")
        for _ in range(max_items if annotator else 0):
            with sw.db.session() as s:
                queue = AnnotationQueue(s)
                cand = queue.next_item(annotator)
                if cand is None:
                    console.print("nothing left to annotate")
                    break
                console.rule(f"candidate {cand.id}")
                console.print(f"behaviour: {cand.kind} query={cand.query!r} products={cand.product_ids}")
                console.print(f"[bold]{cand.relation}[/] → [bold]{cand.tail}[/]")
                for m in s.scalars(select(GraphAnnotation).where(GraphAnnotation.candidate_id == cand.id,
                                                                 GraphAnnotation.machine.is_(True))):
                    console.print(f"[dim]machine label ({m.annotator}): {m.answers}[/]")
                answers = {q: typer.confirm(text, default=True) for q, text in QUESTIONS.items()}
                console.print(f"item status: {queue.record(cand.id, annotator, answers)}")
    sw.close()


@graph_app.command("train")
def train(model: Annotated[str, typer.Option(help="logreg | lightgbm")] = "logreg") -> None:
    """Train the plausibility/typicality classifier on the resolved annotations."""
    from ..graph import AnnotationQueue, IntentClassifier, catalog_products
    from ..graph.classifier import classifier_path, head_text

    sw = open_app()
    with handle_errors():
        with sw.db.session() as s:
            rows = AnnotationQueue(s).training_rows()
            products = catalog_products(s, {p for c, _ in rows for p in c.product_ids})
        if not rows:
            raise InputError("no resolved annotations yet", fix="run `shelfwise graph annotate` with two annotators")
        clf = IntentClassifier(sw.embedder, model=model).fit(
            [head_text(c.query, c.product_ids, products) for c, _ in rows], [c.relation for c, _ in rows],
            [c.tail for c, _ in rows], [int(lab["plausible"]) for _, lab in rows], [int(lab["typical"]) for _, lab in rows])
        path = clf.save(classifier_path(sw.settings.home))
        from ..graph.pipeline import rescore_edges

        scored = rescore_edges(sw, clf)
    console.print(f"trained on {len(rows)} annotations; saved to {path}; {scored} edges rescored")
    sw.close()


@graph_app.command("relations")
def relations_cmd(
    accept: Annotated[str | None, typer.Option(help="accept a proposed relation")] = None,
    reject: Annotated[str | None, typer.Option(help="reject a proposed relation")] = None,
) -> None:
    """Relation types: the 15 seeds and proposals mined from generations."""
    from sqlalchemy import select

    from ..graph.models import GraphRelation
    from ..graph.relations import SEED_RELATIONS, accept_relation, reject_relation

    sw = open_app()
    with handle_errors(), sw.db.session() as s:
        if accept:
            accept_relation(s, accept)
        if reject:
            reject_relation(s, reject)
        table = Table("relation", "status", "support", "examples")
        for name in SEED_RELATIONS:
            table.add_row(name, "seed", "", "")
        for r in s.scalars(select(GraphRelation).order_by(GraphRelation.support.desc())):
            table.add_row(r.name, r.status, str(r.support), "; ".join(r.examples[:3]))
        console.print(table)
    sw.close()


@graph_app.command("cache")
def cache_cmd(
    warm: Annotated[int, typer.Option(help="precompute tier 1 for the N most frequent logged queries")] = 0,
    fill: Annotated[bool, typer.Option(help="run the tier-2 batch job over pending misses")] = False,
) -> None:
    """The two-tier serving cache."""
    from ..graph.serving import IntentCache, frequent_queries

    sw = open_app()
    cache = IntentCache(sw.db, sw.embedder).load()
    if warm:
        console.print(f"tier 1 now holds {cache.warm(frequent_queries(sw.db, warm))} queries")
    if fill:
        console.print(f"filled {cache.fill_misses()} pending misses into tier 2")
    console.print(cache.stats())
    sw.close()


def navigate(query: Annotated[str, typer.Argument(help='e.g. "camping"')]) -> None:
    """Hierarchical navigation from the graph: query → intents → product types → refinements."""
    from ..graph import navigation_tree
    from ..graph.navigate import render_tree

    sw = open_app()
    with handle_errors():
        console.print(render_tree(navigation_tree(sw.db, sw.embedder, query)))
    sw.close()


def recommend(session_file: Annotated[Path, typer.Argument(help="JSON {product_ids, queries} or JSONL events")],
              k: Annotated[int, typer.Option(help="products to recommend")] = 5) -> None:
    """Recommend products that serve a session's inferred intents."""
    from ..graph import recommend as recommend_fn
    from ..graph import register as register_graph
    from ..graph.navigate import read_session

    sw = open_app()
    with handle_errors():
        if not session_file.exists():
            raise InputError(f"{session_file} not found", fix="pass an existing session file")
        # a directory or a non-UTF-8 file is an InputError from read_session
        out = recommend_fn(sw.db, register_graph(sw), read_session(session_file), k)
    console.print("inferred intents: " + (", ".join(f"{i} ({s:.2f})" for i, s in out["intents"]) or "none"))
    table = Table("product", "score", "because")
    for r in out["recommendations"]:
        table.add_row(r["product_id"], f"{r['score']:.2f}", r["because"])
    console.print(table)
    sw.close()


def register(app: typer.Typer) -> None:
    app.add_typer(graph_app, name="graph")
    app.command("navigate")(navigate)
    app.command("recommend")(recommend)
