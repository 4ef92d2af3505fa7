"""The full metadata: core tables plus every domain's tables (for migrations and schema checks)."""

from __future__ import annotations

import importlib

from sqlalchemy import MetaData

from .models import Base

# Domain modules that declare tables on ``Base``. Add yours here with its own Alembic branch.
DOMAIN_MODEL_MODULES: tuple[str, ...] = (
    "shelfwise.enrich.kb.models",
    "shelfwise.enrich.models",
    "shelfwise.graph.models",
    "shelfwise.search.models",
)


def target_metadata() -> MetaData:
    for name in DOMAIN_MODEL_MODULES:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
    return Base.metadata
