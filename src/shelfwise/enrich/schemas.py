"""Attribute schemas are data: JSON files (shipped ones under ``enrich/schemas/``, or yours) loaded into the
core ``category_schemas`` table. Per category, a JSON-schema'd pydantic model bounds what a generator may
write: every string has a maxLength, so a small model under a grammar cannot ramble forever."""

from __future__ import annotations

import json
import re
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model
from sqlalchemy.orm import Session

from ..errors import InputError
from ..store.catalog import AttributeSchema, Catalog
from .kb.scope import ancestors, fold, is_ancestor, path_key

__all__ = [
    "ALIASES",
    "MAX_VALUE_CHARS",
    "PROBLEMS",
    "Problem",
    "Verdict",
    "builtin_schemas",
    "extraction_model",
    "field_key",
    "install_schemas",
    "load_schema_file",
    "schema_attribute",
]

MAX_VALUE_CHARS = 80
# Demo-catalog paths that reuse an OA-Mine schema (same attributes, different place in the tree).
ALIASES = {"Grocery > Coffee": "Coffee", "Grocery > Tea": "Tea", "Grocery > Breakfast Cereal": "Breakfast Cereal"}


def load_schema_file(path: Path | str) -> list[AttributeSchema]:
    """Read a JSON list (or one object) of schemas; a bad entry raises ``InputError`` saying which."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:  # a ValueError, not an OSError: a binary or Latin-1 file
        raise InputError(f"cannot read schemas from {path}: it is not UTF-8 text ({exc.reason} at byte {exc.start})",
                         fix="save the schema file as UTF-8 JSON") from exc
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"cannot read schemas from {path}: {exc}",
                         fix="pass a JSON file holding a list of {category_path, attributes:[{name, ...}]}") from exc
    return _parse(data, str(path))


def _parse(data: Any, source: str) -> list[AttributeSchema]:
    items = data if isinstance(data, list) else [data]
    out = []
    for i, item in enumerate(items):
        try:
            out.append(AttributeSchema.model_validate(item))
        except ValidationError as exc:
            err = exc.errors()[0]
            raise InputError(f"{source}: schema #{i}: {'.'.join(map(str, err['loc']))}: {err['msg']}",
                             fix="each schema needs category_path and attributes with a name") from exc
    return out


@lru_cache(maxsize=1)
def builtin_schemas() -> tuple[AttributeSchema, ...]:
    """The ten OA-Mine categories (derived from train.jsonl), a generic root schema, the demo categories."""
    folder = resources.files("shelfwise.enrich") / "schemas"
    schemas: list[AttributeSchema] = []
    for name in ("oamine.json", "extra.json"):
        schemas.extend(_parse(json.loads((folder / name).read_text(encoding="utf-8")), name))
    by_path = {s.category_path: s for s in schemas}
    for alias, target in ALIASES.items():
        schemas.append(by_path[target].model_copy(update={"category_path": alias}))
    return tuple(schemas)


def install_schemas(session: Session, schemas: list[AttributeSchema] | tuple[AttributeSchema, ...] | None = None) -> int:
    """Put schemas (the built-in ones by default) into ``category_schemas``; idempotent."""
    catalog = Catalog(session)
    schemas = builtin_schemas() if schemas is None else schemas
    for schema in schemas:
        catalog.put_schema(schema)
    return len(schemas)


def schema_attribute(session: Session, category_path: str, attribute: str) -> str:
    """The schema's own spelling of ``attribute`` for learnings scoped to ``category_path``.

    Learnings are matched to workers' attributes by exact name, so a learning for "brand" where the schema
    says "Brand" would never be used. A learning at a category applies there and below, so the names are
    those of the schema the category uses (its nearest ancestor's) and of every schema under it; stored
    schemas win over the built-in ones the loop installs. Case and spacing do not matter; an attribute no
    schema there has is refused."""
    schemas = {path_key(x.category_path): x for x in builtin_schemas()}
    schemas.update({path_key(x.category_path): x for x in Catalog(session).schemas()})
    key = path_key(category_path)
    nearest = next((schemas[k] for k in reversed(ancestors(category_path)) if k in schemas), None)
    names: list[str] = [a.name for a in nearest.attributes] if nearest else []
    for k, schema in sorted(schemas.items()):
        if k != key and is_ancestor(key, k):
            names += [a.name for a in schema.attributes if a.name not in names]
    for name in names:
        if fold(name) == fold(attribute):
            return name
    where = f"category {category_path!r}" if key else "any category"
    raise InputError(f"no attribute schema of {where} has an attribute {attribute!r}",
                     fix=f"use one of: {', '.join(names[:40])}{' …' if len(names) > 40 else ''}" if names else
                     "load the category's schema first (`shelfwise enrich --schemas FILE`)")


def field_key(i: int, name: str) -> str:
    """A Python identifier for attribute ``i``; the attribute name itself is the JSON key (alias)."""
    return f"a{i}_" + re.sub(r"\W+", "_", name).strip("_").lower()


@lru_cache(maxsize=256)
def _extraction_model(names: tuple[str, ...], max_chars: int) -> type[BaseModel]:
    fields: dict[str, Any] = {
        field_key(i, n): (str | None, Field(..., alias=n, max_length=max_chars)) for i, n in enumerate(names)
    }
    return create_model("Extraction", __config__=ConfigDict(populate_by_name=True, extra="ignore"), **fields)


def extraction_model(attributes: list[str] | tuple[str, ...], max_chars: int = MAX_VALUE_CHARS) -> type[BaseModel]:
    """``{attribute: string|null}`` for these attribute names, every string bounded."""
    return _extraction_model(tuple(attributes), max_chars)


# What the evaluator may find wrong with a value, as a closed list: a few tokens to decode instead of a
# sentence (the 0.5B model wrote ~170 tokens of boilerplate reasons per call), and the text a flag carries.
Problem = Literal["none", "not stated", "other attribute", "ambiguous", "misread", "incomplete"]
PROBLEMS: dict[Problem, str] = {
    "none": "the evaluator doubts this value",
    "not stated": "the listing does not state it",
    "other attribute": "it belongs to another attribute",
    "ambiguous": "the listing is ambiguous about it",
    "misread": "it misreads the listing",
    "incomplete": "it is incomplete or lacks context",
}


class Verdict(BaseModel):
    """The evaluator's answer to one question: is the value right, and if not, what is wrong with it."""

    model_config = ConfigDict(extra="ignore")

    correct: bool
    problem: Problem = "none"

    @property
    def reason(self) -> str:
        return PROBLEMS[self.problem]
