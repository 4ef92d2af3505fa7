"""Products as search documents: the core ``products`` row plus its current enriched attribute values.

Attributes come from the core ``extracted_values`` table (``is_current``), written by enrich; search never
imports enrich. Simple string fields a seller sent in ``extra`` (e.g. ``color``) count as attributes too.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..store.models import ExtractedValue, Product
from .text import tokenize

__all__ = ["ProductDoc", "current_attributes", "doc_from_product", "load_docs"]

_MAX_TEXT_CHARS = 4000  # bullets + description beyond this add little to BM25 and cost memory
_SKIP_EXTRA = {"rating", "rating_count", "price", "image", "query_id", "asin", "is_book"}


@dataclass
class ProductDoc:
    id: str
    title: str
    brand: str = ""
    category: str = ""
    attributes: dict[str, str] = field(default_factory=dict)
    text: str = ""
    popularity: float = 0.0  # log1p(rating count or sales), a prior
    rating: float = 0.0
    stamp: str = ""  # content hash + attribute values: a changed stamp means re-index

    def field_tokens(self) -> dict[str, list[str]]:
        attrs = " ".join(f"{v}" for v in self.attributes.values())
        fields = {
            "title": tokenize(self.title),
            "brand": tokenize(self.brand),
            "category": tokenize(self.category.replace(">", " ")),
            "attributes": tokenize(attrs),
            "text": tokenize(self.text),
        }
        fields["all"] = [t for toks in fields.values() for t in toks]
        return fields

    def dense_text(self) -> str:
        """What the embedder sees: short, the most telling fields first (MiniLM reads ~256 tokens)."""
        attrs = ", ".join(f"{k}: {v}" for k, v in self.attributes.items())
        parts = [self.title, self.brand, self.category.split(">")[-1].strip(), attrs]
        return ". ".join(p for p in parts if p)[:1000]


def _number(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0.0


def doc_from_product(product: Product, attributes: dict[str, str] | None = None) -> ProductDoc:
    extra = product.extra or {}
    attrs = {k: str(v) for k, v in extra.items()
             if k not in _SKIP_EXTRA and isinstance(v, str) and 0 < len(v) <= 80}
    attrs.update(attributes or {})
    bullets = product.bullets or []
    text = " ".join([*(str(b) for b in bullets), product.description or ""])[:_MAX_TEXT_CHARS]
    count = _number(extra.get("rating_count")) or _number(extra.get("sales"))
    return ProductDoc(
        id=product.id, title=product.title, brand=product.brand or "", category=product.category_path or "",
        attributes=attrs, text=text, popularity=math.log1p(max(count, 0.0)), rating=_number(extra.get("rating")),
        stamp=f"{product.content_hash}:{sorted((attributes or {}).items())}",
    )


def current_attributes(session: Session, product_ids: Iterable[str] | None = None) -> dict[str, dict[str, str]]:
    stmt = select(ExtractedValue.product_id, ExtractedValue.attribute, ExtractedValue.value).where(
        ExtractedValue.is_current.is_(True), ExtractedValue.value.is_not(None)
    )
    if product_ids is not None:
        stmt = stmt.where(ExtractedValue.product_id.in_(list(product_ids)))
    out: dict[str, dict[str, str]] = {}
    for pid, attr, value in session.execute(stmt):
        if value and value.strip().lower() not in ("null", "none", "n/a"):
            out.setdefault(pid, {})[attr] = value
    return out


def load_docs(session: Session, product_ids: Iterable[str] | None = None) -> list[ProductDoc]:
    """Live (not deleted) products as documents; all of them, or only ``product_ids``."""
    stmt = select(Product).where(Product.deleted.is_(False)).order_by(Product.id)
    ids = list(product_ids) if product_ids is not None else None
    if ids is not None:
        stmt = stmt.where(Product.id.in_(ids))
    attrs = current_attributes(session, ids)
    return [doc_from_product(p, attrs.get(p.id)) for p in session.scalars(stmt)]
