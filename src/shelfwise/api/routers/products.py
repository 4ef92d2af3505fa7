"""Products: ingest listings, read them back with their current attribute values."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel
from sqlalchemy import select

from ...errors import RowError
from ...store import Catalog
from ...store.events import find_bad_text
from ...store.listing_files import validate_row
from ...store.models import ExtractedValue
from ..deps import AppDep, Reader, Writer
from ..text import Name, printable

router = APIRouter(prefix="/products", tags=["products"])
MAX_LIMIT = 10_000  # ids a page; 0 or a negative limit would mean "no limit" further down


class IngestResult(BaseModel):
    added: int
    updated: int
    unchanged: int
    rejected: list[dict[str, Any]]


class ProductOut(BaseModel):
    id: str
    title: str
    description: str
    bullets: list[str]
    category_path: str
    brand: str | None
    version: int
    attributes: dict[str, dict[str, Any]]


@router.post("", response_model=IngestResult)
def ingest(rows: list[dict[str, Any]], sw: AppDep, _: Writer) -> IngestResult:
    """Ingest listings (JSON objects). Bad rows are rejected with their index; the others are kept."""
    parsed = [(i, _checked_row(i, row)) for i, row in enumerate(rows)]
    with sw.db.session() as s:
        report = Catalog(s).ingest(parsed, source="api")
    return IngestResult(added=report.added, updated=report.updated, unchanged=report.unchanged,
                        rejected=[{"index": e.line, "problem": printable(e.problem)} for e in report.errors])


def _checked_row(index: int, row: dict[str, Any]) -> Any:
    """The row as a listing, or its error: text that cannot be stored (NUL, unpaired surrogates) rejects the
    row, not the batch."""
    found = find_bad_text(row)
    if found:
        where, problem = found
        return RowError("request", index, f"{printable(where)}: contains {problem}; send valid UTF-8 text "
                        "without NUL or unpaired surrogates")
    return validate_row("request", index, row)


@router.get("", response_model=list[str])
def list_ids(sw: AppDep, _: Reader, category: Name | None = None,
             limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100) -> list[str]:
    with sw.db.session() as s:
        return [p.id for p in Catalog(s).products(category_prefix=category, limit=limit)]


@router.get("/{product_id}", response_model=ProductOut)
def get(product_id: Name, sw: AppDep, _: Reader) -> ProductOut:
    with sw.db.session() as s:
        p = Catalog(s).get(product_id)
        values = s.scalars(select(ExtractedValue).where(ExtractedValue.product_id == product_id,
                                                        ExtractedValue.is_current.is_(True)))
        attrs = {v.attribute: {"value": v.value, "status": v.status, "model": v.model,
                               "prompt_version": v.prompt_version, "learning_ids": v.learning_ids}
                 for v in values}
        return ProductOut(id=p.id, title=p.title, description=p.description, bullets=list(p.bullets),
                          category_path=p.category_path, brand=p.brand, version=p.version, attributes=attrs)

