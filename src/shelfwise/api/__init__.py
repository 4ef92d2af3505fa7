"""The HTTP API over the library."""

from .app import ROUTERS, create_app

__all__ = ["ROUTERS", "create_app"]
