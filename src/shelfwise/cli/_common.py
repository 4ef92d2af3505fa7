"""Shared CLI plumbing: opening the app, printing errors with their fix, progress bars."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from ..app import Shelfwise
from ..errors import ShelfwiseError

__all__ = ["console", "err_console", "fail", "feedback_app", "handle_errors", "open_app", "progress"]

console = Console()
# Shared by enrich (appeal, return, review, listing-update) and search (click, add-to-cart, purchase):
# each domain's CLI module adds its own commands to it.
feedback_app = typer.Typer(no_args_is_help=True, help="Record shopper and seller feedback events.")
err_console = Console(stderr=True)


def fail(exc: ShelfwiseError | str, code: int = 1) -> typer.Exit:
    # Messages quote user and seller text ("no product with id '[bold]x'") and fixes name extras
    # ("pip install 'shelfwise[ray]'"): printed as markup, Rich would eat the brackets.
    err_console.print(f"[bold red]error:[/] {escape(str(exc))}")
    return typer.Exit(code)


@contextlib.contextmanager
def handle_errors() -> Iterator[None]:
    try:
        yield
    except ShelfwiseError as exc:
        raise fail(exc) from None


def open_app(migrate: bool = True) -> Shelfwise:
    try:
        return Shelfwise.open(migrate=migrate)
    except ShelfwiseError as exc:
        raise fail(exc) from None


def progress() -> Progress:
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        disable=not sys.stderr.isatty() and False,
    )
