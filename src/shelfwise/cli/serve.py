"""``shelfwise serve``: the HTTP API (OpenAPI docs at /docs)."""

from __future__ import annotations

import ipaddress
from typing import Annotated

import typer

__all__ = ["is_loopback", "register"]


def is_loopback(host: str) -> bool:
    """True for an address only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name or 0.0.0.0-like wildcard spelled otherwise: assume it is reachable
        return False


def serve(
    host: Annotated[str, typer.Option(help="interface to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port", min=1, max=65535)] = 8000,
    insecure_no_auth: Annotated[bool, typer.Option(
        "--insecure-no-auth", help="serve a non-loopback address with no API keys: anyone who can reach it is "
                                   "admin")] = False,
) -> None:
    """Serve the HTTP API. Set API keys with roles in shelfwise.toml ([[api_keys]]) before exposing it: without
    keys every caller is admin, so a non-loopback --host is refused unless --insecure-no-auth is given."""
    import uvicorn

    from ..api import create_app
    from ..app import Shelfwise

    sw = Shelfwise.open()
    try:
        keyless = not sw.settings.api_keys
        if keyless and not is_loopback(host) and not insecure_no_auth:
            typer.echo(f"refusing to serve {host}:{port} with no API keys: every caller would be admin.\n"
                       "fix: add [[api_keys]] (name, key, role) to shelfwise.toml, bind --host 127.0.0.1, or pass "
                       "--insecure-no-auth if that is really what you want", err=True)
            raise typer.Exit(2)
        shown = f"[{host}]" if ":" in host else host
        auth = (f"{len(sw.settings.api_keys)} API key(s) required" if not keyless
                else "NO AUTHENTICATION: every caller is admin")
        typer.echo(f"shelfwise API on http://{shown}:{port} (docs at /docs) — {auth}", err=keyless)
        uvicorn.run(create_app(sw), host=host, port=port, log_level="warning")
    finally:
        sw.close()


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
