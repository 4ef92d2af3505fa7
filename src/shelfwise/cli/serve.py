"""``shelfwise serve``: the HTTP API (OpenAPI docs at /docs)."""

from __future__ import annotations

from typing import Annotated

import typer

__all__ = ["register"]


def serve(
    host: Annotated[str, typer.Option(help="interface to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
) -> None:
    """Serve the HTTP API. Set API keys with roles in shelfwise.toml ([[api_keys]]) before exposing it."""
    import uvicorn

    from ..api import create_app

    uvicorn.run(create_app(), host=host, port=port, log_level="warning")


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
