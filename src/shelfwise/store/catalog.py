"""Listings in, products and schemas out. Ingest is idempotent: the same listing twice changes nothing;
a changed listing bumps its version and logs ``listing_updated``."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import select
from sqlalchemy.orm import Session

from ..errors import NotFoundError, RowError
from .events import EventLog, ListingIngested, ListingUpdated, text_problem
from .models import CategorySchema, Product

__all__ = ["AttributeSchema", "AttributeSpec", "Catalog", "IngestReport", "Listing", "category_filter"]

MAX_FIELD_CHARS = 100_000  # anything longer is cut at ingest (and again to a token budget in prompts)
MAX_PATH_CHARS = 512  # the column's width (PostgreSQL enforces it)
PATH_SEP = " > "


def tidy_path(path: str) -> str:
    """'Grocery>Coffee ' and 'Grocery >> Coffee' -> 'Grocery > Coffee': one spelling per path, so the knowledge
    base, the schemas and category filters all see the same string. Empty segments are dropped."""
    return PATH_SEP.join(p.strip() for p in path.split(">") if p.strip())


def category_filter(prefix: str | None) -> Callable[[str | None], bool]:
    """Whether a path is the category ``prefix`` or below it, by whole segments and ignoring case: 'Coffee'
    holds 'Coffee > Pods' but not 'Coffee Makers'. The prefix is tidied once, for filters over many rows."""
    key = tidy_path(prefix or "").lower()
    if not key:
        return lambda _path: True
    below = key + PATH_SEP

    def holds(path: str | None) -> bool:
        p = tidy_path(path or "").lower()
        return p == key or p.startswith(below)

    return holds


_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _repair(m: re.Match[str]) -> str:
    return "" if m.group() == "\x00" else "\ufffd"


class Listing(BaseModel):
    """A seller's listing as it arrives. Text fields are untrusted data."""

    model_config = ConfigDict(extra="allow", str_strip_whitespace=True)

    id: str = Field(min_length=1, max_length=128)
    title: str = Field(min_length=1)
    description: str = ""
    bullets: list[str] = Field(default_factory=list)
    category_path: str = ""
    brand: str | None = Field(None, max_length=256)
    seller_id: str | None = Field(None, max_length=128)
    image_urls: list[str] = Field(default_factory=list)

    @field_validator("id", mode="before")
    @classmethod
    def _id_as_text(cls, v: Any) -> Any:
        v = str(v) if isinstance(v, int) else v
        if isinstance(v, str) and (problem := text_problem(v)):
            raise ValueError(f"an id must not contain {problem}")
        return v

    @field_validator("title", "description", "category_path", "brand", "seller_id", mode="before")
    @classmethod
    def _storable(cls, v: Any) -> Any:
        # Seller text with a NUL (which PostgreSQL refuses) or an unpaired surrogate (which no encoder writes)
        # would fail the whole ingest chunk; neither carries meaning, so the text is kept without them.
        return _UNSTORABLE.sub(_repair, v) if isinstance(v, str) else v

    @field_validator("bullets", "image_urls")
    @classmethod
    def _storable_items(cls, v: list[str]) -> list[str]:
        return [_UNSTORABLE.sub(_repair, x) for x in v]

    @field_validator("bullets", "image_urls", mode="before")
    @classmethod
    def _split_lists(cls, v: Any) -> Any:
        if v is None:
            return []
        if isinstance(v, str):  # CSV cells: "a | b | c" or a JSON list
            v = v.strip()
            if v.startswith("["):
                try:
                    return json.loads(v)
                except json.JSONDecodeError:
                    pass
            return [p.strip() for p in v.split("|") if p.strip()]
        return v

    @field_validator("title", "description")
    @classmethod
    def _cap(cls, v: str) -> str:
        return v[:MAX_FIELD_CHARS]

    @field_validator("category_path")
    @classmethod
    def _path(cls, v: str) -> str:
        v = tidy_path(v)
        if len(v) > MAX_PATH_CHARS:
            raise ValueError(f"category path is {len(v)} characters; at most {MAX_PATH_CHARS} "
                             "(write it as 'Parent > Child', one segment per level)")
        return v

    @property
    def extra_fields(self) -> dict[str, Any]:
        return dict(self.model_extra or {})

    def content_hash(self) -> str:
        data = self.model_dump(mode="json")
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


class AttributeSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, max_length=128)
    description: str = ""
    type: str = "string"  # string | number | boolean | enum
    allowed_values: list[str] = Field(default_factory=list)
    examples: list[str] = Field(default_factory=list)
    unit: str | None = None


class AttributeSchema(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    category_path: str
    description: str = ""
    attributes: list[AttributeSpec]


@dataclass
class IngestReport:
    source: str
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[RowError] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)  # ids met more than once (the last row won)
    _seen: set[str] = field(default_factory=set, repr=False)

    @property
    def total(self) -> int:
        return self.added + self.updated + self.unchanged + len(self.errors)


class Catalog:
    """Products and attribute schemas in one session."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.events = EventLog(session)

    def upsert(self, listing: Listing, *, source: str = "") -> str:
        """Insert or update one listing; returns 'added', 'updated' or 'unchanged'."""
        h = listing.content_hash()
        product = self.session.get(Product, listing.id)
        fields = {
            "title": listing.title, "description": listing.description, "bullets": listing.bullets,
            "category_path": listing.category_path, "brand": listing.brand, "seller_id": listing.seller_id,
            "image_urls": listing.image_urls, "extra": listing.extra_fields, "content_hash": h,
        }
        if product is None:
            self.session.add(Product(id=listing.id, version=1, deleted=False, **fields))
            self.events.append(ListingIngested(product_id=listing.id, source=source, content_hash=h))
            return "added"
        if product.content_hash == h and not product.deleted:
            return "unchanged"
        changed = [k for k, v in fields.items() if k != "content_hash" and getattr(product, k) != v]
        for k, v in fields.items():
            setattr(product, k, v)
        product.deleted = False
        product.version += 1
        self.events.append(ListingUpdated(product_id=listing.id, changed_fields=changed, content_hash=h,
                                          version=product.version))
        return "updated"

    def ingest(self, rows: Iterable[tuple[int, Listing | RowError]], *, source: str = "",
               report: IngestReport | None = None) -> IngestReport:
        """Upsert the rows, counting into ``report`` (a new one by default; pass one to go on over batches)."""
        report = report or IngestReport(source=source)
        for _line, item in rows:
            if isinstance(item, RowError):
                report.errors.append(item)
                continue
            if item.id in report._seen and item.id not in report.duplicates:
                report.duplicates.append(item.id)
            report._seen.add(item.id)
            outcome = self.upsert(item, source=source)
            setattr(report, outcome, getattr(report, outcome) + 1)
        return report

    def get(self, product_id: str) -> Product:
        product = self.session.get(Product, product_id)
        if product is None or product.deleted:
            raise NotFoundError("product", product_id, fix="ingest it first (`shelfwise ingest FILE`)")
        return product

    def products(self, *, category_prefix: str | None = None, limit: int | None = None) -> list[Product]:
        stmt = select(Product).where(Product.deleted.is_(False)).order_by(Product.id)
        if not category_prefix:
            return list(self.session.scalars(stmt.limit(limit) if limit else stmt))
        # Matched in Python (``category_filter``): SQL's lower() folds only ASCII ('Électronique'), and stores
        # written before paths were tidied at ingest may hold 'Grocery>Coffee'.
        out, wanted = [], category_filter(category_prefix)
        for product in self.session.scalars(stmt.execution_options(yield_per=1000)):
            if wanted(product.category_path):
                out.append(product)
                if limit and len(out) >= limit:
                    break
        return out

    def delete(self, product_id: str) -> None:
        self.get(product_id).deleted = True

    # -- schemas ------------------------------------------------------------------------------------
    def put_schema(self, schema: AttributeSchema) -> None:
        row = self.session.get(CategorySchema, schema.category_path)
        attrs = [a.model_dump() for a in schema.attributes]
        if row is None:
            self.session.add(CategorySchema(category_path=schema.category_path, version=1, attributes=attrs,
                                            description=schema.description))
        elif row.attributes != attrs or row.description != schema.description:
            row.attributes, row.description, row.version = attrs, schema.description, row.version + 1

    def schema_for(self, category_path: str) -> AttributeSchema | None:
        """The most specific schema on the path ("A > B > C", then "A > B", then "A", then "")."""
        parts = [p.strip() for p in category_path.split(">") if p.strip()]
        for n in range(len(parts), -1, -1):
            key = " > ".join(parts[:n])
            row = self.session.get(CategorySchema, key)
            if row is not None:
                return AttributeSchema(category_path=row.category_path, description=row.description,
                                       attributes=[AttributeSpec(**a) for a in row.attributes])
        return None

    def schemas(self) -> list[AttributeSchema]:
        rows = self.session.scalars(select(CategorySchema).order_by(CategorySchema.category_path))
        return [AttributeSchema(category_path=r.category_path, description=r.description,
                                attributes=[AttributeSpec(**a) for a in r.attributes]) for r in rows]
