"""The ``shelfwise`` command. Each domain adds its commands through ``register(app)`` in its own module."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from ..config import get_settings
from ..errors import ShelfwiseError
from ..llm import Message
from ..observability import configure_logging, trace
from ..store import Catalog, IngestReport, read_listings
from ..store.listing_files import load_schemas
from ._common import console, err_console, fail, feedback_app, handle_errors, open_app, progress

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
config_app = typer.Typer(no_args_is_help=True, help="Inspect the effective settings.")
llm_app = typer.Typer(no_args_is_help=True, help="Check the model roles.")
app.add_typer(config_app, name="config")
app.add_typer(llm_app, name="llm")
app.add_typer(feedback_app, name="feedback")

DOMAIN_CLI_MODULES = (
    "shelfwise.cli.enrich",
    "shelfwise.cli.kb",
    "shelfwise.cli.search",
    "shelfwise.cli.graph",
    "shelfwise.cli.serve",
)


@app.callback()
def _main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="info-level logs")] = False,
    json_logs: Annotated[bool, typer.Option("--json-logs", help="structured JSON logs on stderr")] = False,
) -> None:
    configure_logging("INFO" if verbose else "WARNING", json_logs=json_logs)


@app.command()
def init() -> None:
    """Create or migrate the database (idempotent)."""
    sw = open_app(migrate=True)
    console.print(f"database ready at [bold]{sw.db.engine.url.render_as_string(hide_password=True)}[/] "
                  f"(revisions {', '.join(sorted(sw.db.applied_revisions()))})")
    sw.close()


CHUNK_ROWS = 500  # rows per transaction: a killed or failed ingest keeps every chunk before it


@app.command()
def ingest(
    file: Annotated[Path, typer.Argument(help="listings as JSONL or CSV", exists=True, dir_okay=False)],
    schemas: Annotated[Path | None, typer.Option(help="attribute schemas (JSON list) to load too")] = None,
) -> None:
    """Ingest listings. Bad rows are reported with their line number and skipped; re-ingesting is idempotent."""
    with trace(), handle_errors():  # both files are read and checked before the database is touched
        loaded = load_schemas(schemas) if schemas is not None else []
        rows = list(read_listings(file))
    sw = open_app()
    report = IngestReport(source=file.name)
    saved = 0
    try:
        with trace(), handle_errors():
            if loaded:
                with sw.db.write_session() as s:
                    for schema in loaded:
                        Catalog(s).put_schema(schema)
            with progress() as bar:
                task = bar.add_task(f"ingest {file.name}", total=len(rows))
                for saved in range(0, len(rows), CHUNK_ROWS):
                    chunk = rows[saved : saved + CHUNK_ROWS]
                    with sw.db.write_session() as s:
                        Catalog(s).ingest(chunk, source=file.name, report=report)
                    bar.advance(task, len(chunk))
                saved = len(rows)
    except typer.Exit:
        if saved < len(rows):
            err_console.print(f"{saved} of {len(rows)} rows were saved; re-running the ingest resumes "
                              "(unchanged rows are skipped)")
        raise
    finally:
        sw.close()
    _print_report(file.name, report, loaded)
    if not rows:
        console.print("no rows")
    elif report.errors and not (report.added or report.updated or report.unchanged):
        raise typer.Exit(1)


def _print_report(name: str, report: IngestReport, schemas: list) -> None:
    for error in report.errors:
        err_console.print(f"[yellow]skipped[/] {escape(str(error))}")
    if report.duplicates:
        n = len(report.duplicates)
        first = ", ".join(report.duplicates[:5]) + (", ..." if n > 5 else "")
        err_console.print(f"[yellow]warning:[/] {n} id{' appears' if n == 1 else 's appear'} more than once in "
                          f"{escape(name)} (the last row of each wins): {escape(first)}")
    if schemas:
        console.print(f"{len(schemas)} schemas loaded")
    console.print(f"{escape(name)}: {report.added} added, {report.updated} updated, {report.unchanged} unchanged, "
                  f"{len(report.errors)} rejected")


@config_app.command("show")
def config_show() -> None:
    """Print the effective settings (secrets masked)."""
    try:
        settings = get_settings()
    except ShelfwiseError as exc:
        raise fail(exc) from None
    console.print_json(json.dumps(settings.masked(), default=str))


@llm_app.command("ping")
def llm_ping(role: Annotated[str | None, typer.Argument(help="a role; all roles when omitted")] = None) -> None:
    """Send a one-line structured request to each role's model and report latency and tokens."""
    from pydantic import BaseModel, Field

    class Pong(BaseModel):
        answer: str = Field(max_length=16)

    sw = open_app()
    roles = [role] if role else sorted(sw.settings.roles)
    table = Table("role", "backend", "model", "ok", "latency ms", "tokens in/out", "answer")
    failures: list[tuple[str, ShelfwiseError]] = []
    for name in roles:
        with handle_errors():
            cfg = sw.settings.role(name)
        try:
            value, comp = sw.llm(name).structured(
                [Message(role="user", content='Reply with the JSON object {"answer": "pong"}.')],
                Pong, prompt_id="ping", use_cache=False,
            )
            table.add_row(name, cfg.backend, cfg.model, "yes", f"{comp.latency_ms:.0f}",
                          f"{comp.input_tokens}/{comp.output_tokens}", value.answer)
        except ShelfwiseError as exc:
            failures.append((name, exc))
            table.add_row(name, cfg.backend, cfg.model, "[red]no[/]", "-", "-", type(exc).__name__)
    console.print(table)
    for name, exc in failures:  # the whole message, so the fix is not cut off by the table
        err_console.print(f"[red]{name}[/]: {exc}")
    sw.close()
    if failures:
        raise typer.Exit(1)


def _register_domains() -> None:
    for name in DOMAIN_CLI_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        module.register(app)


_register_domains()

if __name__ == "__main__":  # pragma: no cover
    app()
