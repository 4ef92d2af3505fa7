"""`shelfwise enrich`, `shelfwise report`, `shelfwise review list|resolve|trust`."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table
from sqlalchemy import func, select

from ..errors import InputError
from ..observability import trace
from ..store.catalog import category_filter
from ..store.models import JobItem
from ._common import console, handle_errors, open_app, progress

if TYPE_CHECKING:
    from ..enrich import BatchReport, LoopConfig

__all__ = ["enrich_shard", "pending_products", "register"]

class ReviewStatus(str, Enum):
    open = "open"
    resolved = "resolved"
    all = "all"


review_app = typer.Typer(no_args_is_help=True, help="The human review queue of the enrichment loop.")


def pending_products(session, category: str | None, limit: int) -> list[str]:  # type: ignore[no-untyped-def]
    """Products to enrich, oldest id first: never enriched, or whose listing changed since the loop read it
    (a newer version than the one its finished mark records; for failed marks and values set by someone
    else, updated after them). Products of an unfinished batch are left to that batch."""
    from ..enrich.models import EnrichBatch
    from ..store.models import ExtractedValue, JobItem, Product

    seen: dict[str, datetime] = {}
    read: dict[str, int] = {}  # product -> the newest listing version an enrichment read
    for pid, at, result in session.execute(select(JobItem.item, JobItem.updated_at, JobItem.result).where(
            JobItem.job.like("enrich:%"), JobItem.status.in_(("done", "failed")))):
        seen[pid] = max(seen.get(pid, at), at)
        if (version := (result or {}).get("listing_version")) is not None:
            read[pid] = max(read.get(pid, version), version)
    for pid, at in session.execute(select(ExtractedValue.product_id, func.max(ExtractedValue.created_at))
                                   .where(ExtractedValue.is_current.is_(True)).group_by(ExtractedValue.product_id)):
        seen[pid] = max(seen.get(pid, at), at)
    running: set[str] = set()
    for ids in session.scalars(select(EnrichBatch.product_ids).where(EnrichBatch.status == "running")):
        running.update(ids)
    stmt = select(Product.id, Product.version, Product.updated_at, Product.category_path) \
        .where(Product.deleted.is_(False)).order_by(Product.id)

    def changed(pid: str, version: int, updated: datetime) -> bool:
        if pid in read:  # the version read: a listing re-ingested while its batch ran counts as changed
            return version > read[pid]
        return pid not in seen or updated > seen[pid]

    wanted = category_filter(category)
    return [pid for pid, version, updated, path in session.execute(stmt)
            if wanted(path) and pid not in running and changed(pid, version, updated)][:limit]


def enrich_shard(sw, shard: tuple[list[str], str, LoopConfig]) -> BatchReport:  # type: ignore[no-untyped-def]
    """One shard of a scaled-out run: an already opened batch ``(ids, batch_id, LoopConfig)``, run on whatever
    process Ray chose with the driver's whole configuration."""
    from ..enrich import EnrichmentLoop

    ids, batch_id, config = shard
    return EnrichmentLoop(sw, config).run_batch(ids, batch_id=batch_id)


def enrich(
    batch_size: Annotated[int, typer.Option(min=1, help="products per batch")] = 20,
    batches: Annotated[int, typer.Option(min=1, help="how many batches to run")] = 1,
    category: Annotated[str | None, typer.Option(help="only products under this category path")] = None,
    schemas: Annotated[Path | None, typer.Option(help="attribute schemas (JSON) to load first",
                                                  exists=True, dir_okay=False)] = None,
    titles: Annotated[bool, typer.Option(help="also generate and check a search-friendly title")] = True,
    workers: Annotated[int, typer.Option(min=1, help=(
        "batches opened per round: run side by side on Ray (--executor ray), one after another locally"))] = 1,
    executor: Annotated[str, typer.Option(help="local (one process) | ray (a local or remote Ray cluster)")
                        ] = "local",
    ray_address: Annotated[str | None, typer.Option(help="join this Ray cluster ('auto', ray://host:10001)")
                           ] = None,
    audit_rulings: Annotated[float, typer.Option(min=0.0, max=1.0, help=(
        "share of confident supervisor rulings also sent to the review queue as a spot check; the answers "
        "teach the loop whom to trust in a dispute (`shelfwise review trust`)"))] = 0.0,
    audit_settled: Annotated[float, typer.Option(min=0.0, max=1.0, help=(
        "share of disputes the track record settled without the supervisor also sent to the review queue as "
        "a spot check, so the record keeps hearing from people"))] = 0.0,
    call_cost: Annotated[float, typer.Option(min=0.0, max=1.0, help=(
        "accuracy per dispute you accept to lose to save a supervisor call: a worker whose confirmed record "
        "comes this close to the supervisor's settles the dispute (0: only when it clearly beats it)"))] = 0.0,
    bench_below: Annotated[float, typer.Option(min=0.0, max=1.0, help=(
        "stop asking a generator in a category once people confirmed its disputed values at most this often "
        "there and another generator clearly more often (0: never; OA-Mine runs use 0.25)"))] = 0.0,
    retry_failed: Annotated[bool, typer.Option(help=(
        "first make the products earlier batches set aside (bad listing or schema) pending again; fix the "
        "cause first (re-ingesting a changed listing queues it anyway)"))] = False,
    span_conventions: Annotated[bool, typer.Option(help=(
        "read two nested values (\"Two Rivers\" / \"Two Rivers Coffee\") as one where people confirmed one "
        "span clearly more often than the supervisor on that attribute"))] = False,
) -> None:
    """Run the self-learning extraction loop in batches. Resumable: interrupted batches are finished first.

    With --workers N the loop runs N batches at a time (on Ray with --executor ray), all writing to the one
    store; learnings written by one batch reach the others' next batches."""
    from ..enrich import EnrichmentLoop, LoopConfig, TrustConfig, install_schemas, load_schema_file
    from ..enrich.models import EnrichBatch
    from ..scale import run_sharded

    sw = open_app()
    with trace(), handle_errors():
        if executor not in ("local", "ray"):
            raise InputError(f"unknown executor {executor!r}", fix="use --executor local or --executor ray")
        if schemas is not None:
            with sw.db.session() as s:
                install_schemas(s, load_schema_file(schemas))
        trust = TrustConfig(call_cost=call_cost, bench_below=bench_below, span_conventions=span_conventions)
        config = LoopConfig(titles=titles, audit_rulings=audit_rulings, audit_settled=audit_settled, trust=trust)
        loop = EnrichmentLoop(sw, config)
        if retry_failed:
            with sw.db.session() as s:
                failed_in = sorted(set(s.scalars(select(JobItem.job).where(JobItem.job.like("enrich:%"),
                                                                           JobItem.status == "failed"))))
            n = sum(loop.retry_failed(job.removeprefix("enrich:")) for job in failed_in)
            console.print(f"{n} failed products queued again")
        table = Table("batch", "products", "disagreement rate", "screened", "span conventions", "settled by record",
                      "supervisor calls", "reviews", "learnings", "tokens", "model s", title="enrichment batches")
        reports = []
        for _ in range(batches):
            with sw.db.session() as s:
                running = [(list(b.product_ids), b.id) for b in s.scalars(
                    select(EnrichBatch).where(EnrichBatch.status == "running").order_by(EnrichBatch.seq))]
                pending = [] if running else pending_products(s, category, batch_size * workers)
            # Batches are opened here, one at a time, so concurrent workers never race for a sequence number.
            opened = running[:workers] or [(ids, loop.open_batch(ids).id)
                                           for ids in (pending[i: i + batch_size]
                                                       for i in range(0, len(pending), batch_size))]
            if not opened:
                console.print("no products left to enrich")
                break
            if workers == 1 and executor == "local":
                ids, bid = opened[0]
                with progress() as bar:
                    task = bar.add_task(f"batch {bid}", total=len(ids))
                    reports.append(loop.run_batch(ids, batch_id=bid, on_product=lambda _r, t=task: bar.advance(t)))
            else:
                with console.status(f"{len(opened)} batches on {executor} ({workers} workers)…"):
                    reports += run_sharded(enrich_shard, [(ids, bid, config) for ids, bid in opened],
                                           sw=sw if executor == "local" else None, settings=sw.settings,
                                           executor=executor, workers=workers, ray_address=ray_address)
        for report in reports:
            table.add_row(report.batch_id, str(report.products), f"{report.disagreement_rate:.0%}",
                          str(report.screened), str(report.conventions), str(report.trusted),
                          str(report.supervisor_calls), str(report.reviews),
                          str(report.learnings_written), str(report.tokens), f"{report.seconds:.1f}")
        console.print(table)
        for report in reports:
            for pid, error in report.failed.items():
                console.print(f"[yellow]set aside[/] {escape(pid)} in batch {report.batch_id}: {escape(error)}")
        if any(r.failed for r in reports):
            console.print("fix the listing (`shelfwise ingest`) or schema, then run `shelfwise enrich --retry-failed`")
    sw.close()


def report(
    chart: Annotated[Path | None, typer.Option(help="where to write the PNG chart [default: HOME/enrich_health.png]")
                     ] = None,
    category: Annotated[str | None, typer.Option(help="only categories under this path")] = None,
) -> None:
    """Health of the loop: disagreement and supervisor rates over batches, per attribute, learnings' effect."""
    from ..enrich.health import health_report, write_chart

    sw = open_app()
    with handle_errors(), sw.db.session() as s:
        rep = health_report(s, category_prefix=category)
    bt = Table("batch", "products", "disagreement rate", "screened", "span conventions", "settled by record",
               "supervisor calls/product", "tokens/product", "seconds/product", "learnings", title="per batch")
    for b in rep.batches:
        bt.add_row(str(b.seq), str(b.products), f"{b.disagreement_rate:.0%}", str(b.screened), str(b.conventions),
                   str(b.trusted), f"{b.supervisor_rate:.2f}", f"{b.tokens_per_product:.0f}",
                   f"{b.seconds_per_product:.1f}", str(b.learnings))
    console.print(bt)
    at = Table("category", "attribute", "decided", "disagreement", "first→last", "learnings", "before→after",
               "flag", title="per attribute")
    for a in rep.attributes:
        fl = f"{a.first_rate:.0%}→{a.last_rate:.0%}" if a.first_rate is not None and a.last_rate is not None else "-"
        ba = f"{a.before:.0%}→{a.after:.0%}" if a.before is not None and a.after is not None else "-"
        at.add_row(escape(a.category_path), escape(a.attribute), str(a.decided), f"{a.disagreement_rate:.0%}", fl,
                   str(a.learnings), ba, f"[yellow]{a.flag}[/]" if a.flag else "")
    console.print(at)
    if rep.batches:
        console.print(f"chart: {write_chart(rep, chart or sw.settings.home / 'enrich_health.png')}")
    sw.close()


@review_app.command("list")
def review_list(
    status: Annotated[ReviewStatus, typer.Option(help="which items")] = ReviewStatus.open,
    limit: Annotated[int, typer.Option(min=1)] = 50,
) -> None:
    """Cases waiting for a person."""
    from ..enrich import ReviewQueue

    sw = open_app()
    with handle_errors(), sw.db.session() as s:
        items = ReviewQueue(s).list(None if status is ReviewStatus.all else status.value, limit=limit)
    table = Table("id", "product", "attribute", "proposed", "confidence", "candidates", "reason", "status")
    for it in items:
        cands = ", ".join(f"{c.get('worker')}={c.get('value')!r}" for c in it.candidates)
        table.add_row(*map(escape, (  # seller text: never read as markup
            str(it.id), it.product_id, it.attribute, repr(it.proposed), f"{it.confidence:.2f}", cands, it.reason[:60],
            it.status if it.status == "open" else f"{it.status}: {it.resolution!r}")))
    console.print(table)
    sw.close()


@review_app.command("resolve")
def review_resolve(
    item_id: Annotated[int, typer.Argument(help="review item id (see `shelfwise review list`)")],
    value: Annotated[str, typer.Argument(help="the correct value; '' when the listing does not state it")],
    actor: Annotated[str, typer.Option(help="who decided")] = "expert",
    learn: Annotated[bool, typer.Option(help="also write a learning where the value generalises")] = True,
) -> None:
    """Settle a review item: the value becomes a label and, where it generalises, a learning."""
    from ..enrich import ReviewQueue
    from ..enrich.kb import KnowledgeBase

    sw = open_app()
    with handle_errors(), sw.db.session() as s:
        kb = KnowledgeBase(s, embedder=sw.embedder, space="production")
        view = ReviewQueue(s, kb).resolve(item_id, value or None, actor=actor, learn=learn)
    console.print(escape(f"review {view.id}: {view.product_id} {view.attribute} = {view.resolution!r}"
                         + (f" (learning #{view.learning_id})" if view.learning_id else "")))
    sw.close()


@review_app.command("trust")
def review_trust(
    category: Annotated[str | None, typer.Option(help="only this category path")] = None,
) -> None:
    """The track record learned from resolved review items: how often each worker, and the supervisor, was
    confirmed right in a dispute. A worker clearly ahead of the supervisor settles later disputes alone.
    Sources span:shorter / span:longer score the span conventions: which of two nested values was right.
    Answers given while a role ran another model than it does now are left out."""
    from ..enrich import LoopConfig, TrackRecord
    from ..enrich.runner import source_models

    sw = open_app()
    with handle_errors(), sw.db.session() as s:
        # as `shelfwise enrich` reads it: answers about a model a role no longer runs are left out
        record = TrackRecord.from_reviews(s, models=source_models(sw, LoopConfig()))
    table = Table("category", "attribute", "source", "answers", "right", "estimated accuracy",
                  title="track record (from resolved review items)")
    wanted = category_filter(category)
    for row in record.rows():
        if wanted(row.category_path):
            table.add_row(*map(escape, (row.category_path or "(all)", row.attribute or "(all)", row.source,
                                        f"{row.answers:.0f}", f"{row.right:.0f}", f"{row.accuracy:.0%}")))
    console.print(table if table.row_count else "no resolved review items yet: nothing learned about whom to trust")
    sw.close()


def register(app: typer.Typer) -> None:
    app.command("enrich")(enrich)
    app.command("report")(report)
    app.add_typer(review_app, name="review")
