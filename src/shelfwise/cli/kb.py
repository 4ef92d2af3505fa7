"""``shelfwise kb ...`` (the knowledge base of learnings) and ``shelfwise feedback appeal|return|review``."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table
from rich.tree import Tree

from ..errors import InputError, NotFoundError, ShelfwiseError
from ._common import console, err_console, feedback_app, handle_errors, open_app

__all__ = ["kb_app", "register"]

kb_app = typer.Typer(no_args_is_help=True, help="Inspect and curate the knowledge base of learnings.")
Space = Annotated[str, typer.Option("--space", help="knowledge-base space (production | staging | ...)")]
Actor = Annotated[str, typer.Option("--actor", help="who makes the change (recorded in the history)")]


@contextlib.contextmanager
def _kb(space: str = "production", *, use_llm: bool = False) -> Iterator:  # type: ignore[type-arg]
    from ..enrich.kb import KnowledgeBase

    sw = open_app()
    try:
        with handle_errors():
            embedder = llm = None
            try:
                embedder = sw.embedder
            except ShelfwiseError as exc:  # placement still works on word overlap
                err_console.print(f"[yellow]no embedder ({escape(str(exc))}); duplicate checks use word overlap[/]")
            if use_llm:
                llm = sw.llm("memory.manager")
            with sw.db.session() as s:
                yield KnowledgeBase(s, embedder=embedder, llm=llm, space=space)
    finally:
        sw.close()


def _table(views, title: str = "learnings") -> Table:  # type: ignore[no-untyped-def]
    table = Table("id", "v", "status", "category", "attribute", "learning", "injected", "disagreed after",
                  title=title)
    for v in views:
        status = {"active": "[green]active[/]", "proposed": "[yellow]proposed[/]"}.get(v.status, "[dim]retired[/]")
        # Learnings quote listings and experts' text: cells are shown as written, not as Rich markup.
        table.add_row(str(v.id), str(v.version), status + (" [red]![/]" if v.critical else ""),
                      escape(v.category_path or "(all)"), escape(v.attribute or "*"), escape(v.text),
                      str(v.times_injected),
                      str(v.disagreements_after))
    return table


def _pairs(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        if "=" not in item:
            raise InputError(f"normalisation {item!r} has no '='", fix="write it as 'surface form=Canonical'")
        k, v = item.split("=", 1)
        out[k.strip()] = v.strip()
    return out


@kb_app.command("list")
def kb_list(status: Annotated[str | None, typer.Option(help="proposed | active | retired")] = None,
            category: Annotated[str | None, typer.Option(help="only this category and below")] = None,
            attribute: Annotated[str | None, typer.Option()] = None, space: Space = "production") -> None:
    """List learnings."""
    with _kb(space) as kb:
        console.print(_table(kb.list(status=status, category_prefix=category, attribute=attribute)))


@kb_app.command("show")
def kb_show(learning_id: int, space: Space = "production") -> None:
    """Show one learning with its examples, normalisation, evidence and counters."""
    with _kb(space) as kb:
        v = kb.get(learning_id)
        console.print(_table([v], title=f"learning #{v.id} ({v.origin}, support {v.support})"))
        for ex in v.examples:
            console.print(f"  example: {ex}", markup=False)
        for surface, canon in v.normalize.items():
            console.print(f"  normalise: {surface!r} -> {canon!r}", markup=False)
        for e in v.evidence:
            console.print(f"  evidence: {e.kind} product={e.product_id} event={e.event_id} {e.note}", markup=False)
        console.print(f"  outcomes after injection: {v.agreements_after} agreed, {v.disagreements_after} disagreed")


@kb_app.command("add")
def kb_add(text: Annotated[str, typer.Option(help="the learning, a concrete instruction")],
           category: Annotated[str, typer.Option(help="category path, e.g. 'Grocery > Coffee'")] = "",
           attribute: Annotated[str | None, typer.Option()] = None,
           example: Annotated[list[str], typer.Option(help="worked example (repeatable)")] = [],  # noqa: B006
           normalize: Annotated[list[str], typer.Option(help="'surface=Canonical' (repeatable)")] = [],  # noqa: B006
           critical: bool = False, status: str = "active", actor: Actor = "expert", space: Space = "production",
           llm: Annotated[bool, typer.Option("--llm/--no-llm", help="let the memory manager LLM decide")] = True,
           ) -> None:
    """Add a learning by hand (placed by the memory manager: merge, replace or new branch). The attribute is
    checked against the category's schema and stored in the schema's spelling ("brand" -> "Brand")."""
    from ..enrich.kb import Evidence, LearningDraft
    from ..enrich.schemas import schema_attribute

    with _kb(space, use_llm=llm) as kb:
        if attribute is not None:  # workers match learnings to their attributes by exact name
            attribute = schema_attribute(kb.session, category, attribute)
        try:
            draft = LearningDraft(category_path=category, attribute=attribute, text=text, examples=example,
                                  normalize=_pairs(normalize), critical=critical,
                                  evidence=[Evidence(kind="expert", note=f"added by {actor}")])
        except ValueError as exc:
            raise InputError(f"invalid learning: {exc}", fix="check --text (3-600 chars) and the options") from None
        p = kb.add(draft, status=status, actor=actor)
        console.print(f"learning #{p.learning_id}: [bold]{p.action}[/] ({p.decided_by}) {escape(p.reason)}")


@kb_app.command("edit")
def kb_edit(learning_id: int, text: Annotated[str | None, typer.Option()] = None,
            example: Annotated[list[str] | None, typer.Option(help="replaces the examples")] = None,
            normalize: Annotated[list[str] | None, typer.Option(help="replaces the map")] = None,
            critical: Annotated[bool | None, typer.Option("--critical/--not-critical")] = None,
            category: Annotated[str | None, typer.Option()] = None, reason: str = "", actor: Actor = "expert",
            space: Space = "production") -> None:
    """Edit a learning (a new version; the old one stays in the history)."""
    with _kb(space) as kb:
        v = kb.edit(learning_id, text=text, examples=example, normalize=_pairs(normalize) if normalize else None,
                    critical=critical, category_path=category, actor=actor, reason=reason)
        console.print(f"learning #{v.id} is now version {v.version}")


@kb_app.command("approve")
def kb_approve(learning_id: int, actor: Actor = "expert", space: Space = "production") -> None:
    """Approve a proposed learning (it becomes active and is injected into prompts)."""
    with _kb(space) as kb:
        v = kb.approve(learning_id, actor=actor)
        console.print(f"learning #{v.id} is [green]active[/] (version {v.version})")


@kb_app.command("retire")
def kb_retire(learning_id: int, reason: Annotated[str, typer.Option(help="why it is wrong or outdated")],
              actor: Actor = "expert", space: Space = "production") -> None:
    """Retire a learning (it stops being injected; rollback restores it)."""
    with _kb(space) as kb:
        v = kb.retire(learning_id, reason, actor=actor)
        console.print(f"learning #{v.id} retired (version {v.version})")


@kb_app.command("rollback")
def kb_rollback(learning_id: int, version: int, actor: Actor = "expert", space: Space = "production") -> None:
    """Restore an earlier version of a learning (recorded as a new version)."""
    with _kb(space) as kb:
        v = kb.rollback(learning_id, version, actor=actor)
        console.print(f"learning #{v.id} restored to version {version} as version {v.version} ({v.status})")


@kb_app.command("history")
def kb_history(learning_id: int, space: Space = "production") -> None:
    """Every version of a learning: what changed, why, from which evidence, by whom."""
    with _kb(space) as kb:
        table = Table("v", "when", "action", "by", "status", "text", "why", "evidence", title=f"#{learning_id}")
        for h in kb.history(learning_id):
            table.add_row(str(h.version), f"{h.created_at:%Y-%m-%d %H:%M}" if h.created_at else "", h.action,
                          escape(h.actor), h.status, escape(h.text), escape(h.reason),
                          escape(", ".join(f"{e.kind}:{e.product_id or e.event_id or ''}" for e in h.evidence[:4])))
        console.print(table)


@kb_app.command("tree")
def kb_tree(space: Space = "production", retired: bool = False) -> None:
    """Browse the knowledge tree by category path, then attribute."""
    with _kb(space) as kb:
        root = kb.tree(include_retired=retired)

        def add(branch: Tree, node) -> None:  # type: ignore[no-untyped-def]
            for v in node.learnings:
                colour = {"active": "green", "proposed": "yellow"}.get(v.status, "dim")
                branch.add(f"[{colour}]#{v.id}[/] [bold]{escape(v.attribute or '*')}[/]: {escape(v.text)}")
            for child in node.children:
                add(branch.add(f"[bold cyan]{escape(child.name)}[/] ({child.count()})"), child)

        tree = Tree(f"[bold]{space}[/] ({root.count()} learnings)")
        add(tree, root)
        console.print(tree)


@kb_app.command("promote")
def kb_promote(source: Annotated[str, typer.Option("--from")] = "staging",
               target: Annotated[str, typer.Option("--to")] = "production", actor: Actor = "expert") -> None:
    """Learn-then-deploy: promote the audited (active) learnings of one space into another."""
    with _kb(source) as kb:
        placements = kb.promote(from_space=source, to_space=target, actor=actor)
    counts: dict[str, int] = {}
    for p in placements:
        counts[p.action] = counts.get(p.action, 0) + 1
    console.print(f"promoted {source} -> {target}: " + (", ".join(f"{n} {a}" for a, n in sorted(counts.items()))
                                                         or "nothing to do"))


@kb_app.command("synthesize")
def kb_synthesize(category: Annotated[str | None, typer.Option()] = None, space: Space = "production",
                  llm: Annotated[bool, typer.Option("--llm/--no-llm")] = True) -> None:
    """Lift patterns repeated across sibling categories into broader learnings; compact crowded nodes."""
    with _kb(space, use_llm=llm) as kb:
        placements = kb.synthesize(category)
    for p in placements:
        console.print(f"#{p.learning_id} {p.action} at '{p.path or '(all)'}': {p.reason}", markup=False)
    if not placements:
        console.print("no pattern is frequent enough to synthesise")


@kb_app.command("why")
def kb_why(product: str, attribute: str, space: Space = "production") -> None:
    """Why does PRODUCT have this ATTRIBUTE value? Shows the model, prompt version and the learnings used."""
    with _kb(space) as kb:
        row = kb.current_value(product, attribute)
        console.print(f"[bold]{escape(product)}[/] {escape(attribute)} = [bold]{escape(repr(row.value))}[/] "
                      f"({row.status}, confidence "
                      f"{row.confidence if row.confidence is not None else '-'}) by model [bold]{row.model}[/], "
                      f"prompt {row.prompt_version or '-'}, batch {row.batch_id or '-'}, stored {row.created_at:%Y-%m-%d %H:%M}")
        views = []
        for lid in row.learning_ids or []:
            try:
                views.append(kb.get(int(lid)))
            except NotFoundError:
                err_console.print(f"[yellow]learning #{lid} is not in space {escape(repr(space))}[/]")
        if views:
            console.print(_table(views, title="learnings in the prompt (current versions)"))
            for v in views:  # the wording the worker actually saw may have changed since
                then = [h for h in kb.history(v.id) if h.created_at and h.created_at <= row.created_at]
                if then and then[-1].version != v.version:
                    console.print(f"  #{v.id} was version {then[-1].version} when the value was stored: "
                                  f"{then[-1].text!r} ({then[-1].status})", markup=False)
        else:
            console.print("no learnings were in the prompt")


# -- feedback ---------------------------------------------------------------------------------------


@feedback_app.command("appeal")
def fb_appeal(product: str, message: Annotated[str, typer.Option(help="the seller's message (untrusted)")],
              attribute: Annotated[str | None, typer.Option()] = None,
              claimed_value: Annotated[str | None, typer.Option("--claimed-value")] = None,
              seller: Annotated[str | None, typer.Option()] = None) -> None:
    """Record a seller appeal against a stored value."""
    from ..enrich.feedback import record_appeal

    _record(lambda s: record_appeal(s, product, message=message, attribute=attribute, claimed_value=claimed_value,
                                    seller_id=seller), "appeal")


@feedback_app.command("return")
def fb_return(product: str, reason: Annotated[str, typer.Option(help="the return reason (untrusted)")],
              customer: Annotated[str | None, typer.Option()] = None,
              query: Annotated[str | None, typer.Option()] = None) -> None:
    """Record a customer return with its reason."""
    from ..enrich.feedback import record_return

    _record(lambda s: record_return(s, product, reason=reason, customer_id=customer, query=query), "return")


@feedback_app.command("review")
def fb_review(product: str, rating: Annotated[int, typer.Option(min=1, max=5)],
              text: Annotated[str, typer.Option(help="the review text (untrusted)")],
              customer: Annotated[str | None, typer.Option()] = None) -> None:
    """Record a customer review."""
    from ..enrich.feedback import record_review

    _record(lambda s: record_review(s, product, rating=rating, text=text, customer_id=customer), "review")


@feedback_app.command("listing-update")
def fb_listing_update(product: str, field: Annotated[list[str], typer.Option(help="changed field (repeatable)")]) -> None:
    """Record that a seller edited a listing."""
    from ..enrich.feedback import record_listing_update

    _record(lambda s: record_listing_update(s, product, changed_fields=field), "listing update")


@feedback_app.command("analyze")
def fb_analyze(min_sources: Annotated[int, typer.Option(min=1, help="independent sources per pattern")] = 3,
               space: Space = "production") -> None:
    """Group feedback, ask the supervisor about patterns, write PROPOSED learnings (approve with `kb approve`)."""
    from ..enrich.feedback import FeedbackConfig, FeedbackJob
    from ..enrich.kb import KnowledgeBase

    sw = open_app()
    try:
        with handle_errors(), sw.db.session() as s:
            kb = KnowledgeBase(s, embedder=sw.embedder, llm=sw.llm("memory.manager"), space=space)
            report = FeedbackJob(s, kb=kb, llm=sw.llm("supervisor"),
                                 config=FeedbackConfig(min_sources=min_sources)).run()
    finally:
        sw.close()
    console.print(f"{report.groups} groups, {report.below_threshold} below {min_sources} sources, "
                  f"{report.investigated} investigated, {report.skipped_done} already done")
    for p in report.placements:
        console.print(f"proposed learning #{p.learning_id} ({p.action}): {p.reason}", markup=False)


def _record(fn, what: str) -> None:  # type: ignore[no-untyped-def]
    sw = open_app()
    try:
        with handle_errors(), sw.db.session() as s:
            event_id = fn(s)
    finally:
        sw.close()
    console.print(f"{what} recorded as event {event_id}")


def register(app: typer.Typer) -> None:
    app.add_typer(kb_app, name="kb")
