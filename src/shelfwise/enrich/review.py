"""The human review queue: cases the supervisor could not settle with confidence, and spot checks (audit
samples of confident rulings and of disputes the track record settled). A resolution becomes the
product's value (status ``human``, a gold label) and, where it generalises (the value is a span of the
title), a learning placed by the knowledge base like any other; the worker values it rules out become a
rejection learning that screens them out of later votes (screening.py)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ..errors import ConflictError, InputError, NotFoundError
from ..store.catalog import Listing
from ..store.models import Product, utcnow
from .agreement import AttributeDecision
from .kb.types import Evidence
from .models import ReviewItem

__all__ = ["MAX_ACTOR_CHARS", "ReviewQueue", "ReviewView", "open_review"]

# The actor is stored as ``human:<actor>`` in a 128-character model column and in evidence notes.
MAX_ACTOR_CHARS = 100


class ReviewView(BaseModel):
    model_config = ConfigDict(frozen=True, from_attributes=True)

    id: int
    product_id: str
    category_path: str
    attribute: str
    candidates: list[Any]
    proposed: str | None
    proposed_by: str | None = None  # None: the supervisor; else the source a settled dispute trusted
    models: dict[str, Any] | None = None  # source -> model when the item was opened
    confidence: float
    reason: str
    status: str
    resolution: str | None = None
    resolved_by: str | None = None
    learning_id: int | None = None


def open_review(session: Session, listing: Listing, decision: AttributeDecision, *, proposed: str | None,
                confidence: float, reason: str, batch_id: str | None, proposed_by: str | None = None,
                models: dict[str, str] | None = None) -> int:
    """Queue one (product, attribute) unless it is already waiting (re-runs must not duplicate items).
    ``proposed_by`` names the source of ``proposed`` when it is not the supervisor (an audit sample of a
    dispute the track record settled); ``models`` the model behind each source, so that the track record can
    tell a role's old model from its new one."""
    existing = session.scalar(select(ReviewItem.id).where(
        ReviewItem.product_id == listing.id, ReviewItem.attribute == decision.attribute, ReviewItem.status == "open"))
    if existing is not None:
        return existing
    item = ReviewItem(product_id=listing.id, category_path=listing.category_path, attribute=decision.attribute,
                      candidates=[c.model_dump() for c in decision.candidates], proposed=proposed, proposed_by=proposed_by,
                      models=models,
                      confidence=confidence, reason=reason[:2000], batch_id=batch_id, status="open")
    session.add(item)
    session.flush()
    return item.id


class ReviewQueue:
    def __init__(self, session: Session, kb: Any = None) -> None:
        self.session, self.kb = session, kb

    def list(self, status: str | None = "open", limit: int = 100) -> list[ReviewView]:
        stmt = select(ReviewItem).order_by(ReviewItem.id).limit(limit)
        if status:
            stmt = stmt.where(ReviewItem.status == status)
        return [ReviewView.model_validate(r) for r in self.session.scalars(stmt)]

    def resolve(self, item_id: int, value: str | None, *, actor: str = "expert", learn: bool = True) -> ReviewView:
        """Settle an item: store ``value`` as the human label, and write a learning where it generalises."""
        from .drafts import rejection_draft, value_drafts
        from .product import store_value

        item = self.session.get(ReviewItem, item_id)
        if item is None:
            raise NotFoundError("review item", item_id, fix="list open items with `shelfwise review list`")
        if item.status != "open":
            raise _already_resolved(item_id, item.resolution, item.resolved_by)
        actor = _actor(actor)
        # Claim the item before writing anything: only one of two concurrent resolutions matches status 'open'
        # (PostgreSQL re-checks the row after the other commits; SQLite writers are serialised), so exactly one
        # answer becomes the label and the other is a conflict; the claim rolls back with the transaction.
        claimed = self.session.execute(
            update(ReviewItem).where(ReviewItem.id == item_id, ReviewItem.status == "open")
            .values(status="resolved", resolved_by=actor, resolved_at=utcnow())
            .execution_options(synchronize_session=False)).rowcount
        if claimed != 1:
            self.session.refresh(item)
            raise _already_resolved(item_id, item.resolution, item.resolved_by)
        value = (value or "").strip() or None  # a blank answer means "the listing does not state it": NULL
        store_value(self.session, item.product_id, item.attribute, value, status="human", model=f"human:{actor}",
                    prompt_version="review", learning_ids=[], batch_id=item.batch_id, confidence=1.0)
        product = self.session.get(Product, item.product_id)
        if learn and self.kb is not None and product is not None and item.attribute != "title":
            ev = Evidence(kind="review", product_id=item.product_id, note=f"review item {item_id} by {actor}")
            drafts = value_drafts(item.category_path, item.attribute, value, product.title, evidence=ev) if value else []
            rejection = rejection_draft(item.category_path, item.attribute, value, item.candidates, evidence=ev)
            for draft in [*drafts, *([rejection] if rejection else [])]:
                placed = self.kb.add(draft, status="active", actor=actor)
                item.learning_id = item.learning_id or placed.learning_id
        item.status, item.resolution, item.resolved_by, item.resolved_at = "resolved", value, actor, utcnow()
        self.session.flush()
        return ReviewView.model_validate(item)


def _already_resolved(item_id: int, resolution: str | None, by: str | None) -> ConflictError:
    return ConflictError(f"review item {item_id} is already resolved (value {resolution!r}"
                         f"{f' by {by}' if by else ''})",
                         fix="list open items with `shelfwise review list`; to change a settled value, "
                         "correct the learning or the product instead")


def _actor(actor: str) -> str:
    """A reviewer's name as stored; refused rather than cut, so two long names cannot become one."""
    name = " ".join(actor.split())
    if not name or len(name) > MAX_ACTOR_CHARS:
        raise InputError(f"reviewer name of {len(name)} characters" if name else "empty reviewer name",
                         fix=f"pass --actor with a short name (1-{MAX_ACTOR_CHARS} characters), e.g. --actor ana")
    return name
