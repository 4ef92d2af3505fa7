"""`make demo`: the whole program end to end on the embedded defaults, offline.

Ingests a small catalog that ships with the package, then runs each domain's demo step in dependency
order: enrich (workers, disagreements, supervisor, learnings, a second batch, the chart), understand (a few
intent edges and a navigation tree, registered as the intent source), search (index, queries with
explanations). Everything lands in ``.shelfwise/`` (or ``SHELFWISE_HOME``).
"""

from __future__ import annotations

import importlib
import os
import sys
import time
from importlib import resources
from pathlib import Path

from rich.console import Console
from rich.panel import Panel

from .app import Shelfwise
from .observability import configure_logging, trace
from .store import Catalog, read_listings

__all__ = ["DEMO_STEPS", "demo_catalog_path", "main"]

# (title, module with ``run_demo(sw, console)``), in dependency order.
DEMO_STEPS: tuple[tuple[str, str], ...] = (
    ("Enrich: the self-learning extraction loop", "shelfwise.enrich.demo"),
    ("Understand: the intent knowledge graph", "shelfwise.graph.demo"),
    ("Search: retrieve, mix with a bandit, rank", "shelfwise.search.demo"),
)


def demo_catalog_path() -> Path:
    return Path(str(resources.files("shelfwise") / "data" / "demo_catalog.jsonl"))


def ingest_demo_catalog(sw: Shelfwise, console: Console) -> None:
    path = demo_catalog_path()
    with sw.db.session() as s:
        report = Catalog(s).ingest(read_listings(path), source=path.name)
    console.print(f"ingested {path.name}: {report.added} added, {report.updated} updated, "
                  f"{report.unchanged} unchanged, {len(report.errors)} rejected")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    only = set(argv)  # e.g. `python -m shelfwise.demo search` runs the ingest and the search step only
    configure_logging(os.environ.get("SHELFWISE_LOG_LEVEL", "WARNING"))
    console = Console()
    started = time.perf_counter()
    with Shelfwise.open() as sw, trace() as trace_id:
        console.print(Panel.fit(
            f"shelfwise demo — database {sw.db.engine.url.render_as_string(hide_password=True)}\n"
            f"trace id {trace_id}; models: "
            + ", ".join(f"{r}={c.backend}:{c.model}" for r, c in sorted(sw.settings.roles.items())),
            title="shelfwise"))
        ingest_demo_catalog(sw, console)
        for title, module_name in DEMO_STEPS:
            if only and not any(word in module_name for word in only):
                continue
            try:
                module = importlib.import_module(module_name)
            except ModuleNotFoundError as exc:
                if exc.name != module_name:
                    raise
                console.print(f"[yellow]skipped[/] {title}: {module_name} is not built yet")
                continue
            console.rule(title)
            step_start = time.perf_counter()
            module.run_demo(sw, console)
            console.print(f"[dim]{title.split(':')[0]} took {time.perf_counter() - step_start:.0f} s[/]")
        console.rule()
        console.print(f"done in {time.perf_counter() - started:.0f} s; everything is stored in "
                      f"[bold]{sw.settings.home}[/] — try `shelfwise --help`.")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
