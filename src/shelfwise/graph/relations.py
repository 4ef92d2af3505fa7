"""The relation types intent edges use: the seeds' 15, plus any a person accepted from proposals.

New relations are *proposed* from recurring predicate patterns in the generated tails (e.g. many tails
starting "protect ..." across different products) and only used after someone accepts them."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..errors import NotFoundError
from .models import GraphRelation

__all__ = ["SEED_RELATIONS", "accept_relation", "mine_relation_proposals", "reject_relation", "relations"]

# name -> how the relation reads in a prompt ("the product is ... <tail>")
SEED_RELATIONS: dict[str, str] = {
    "used_for_function": "is used for a function, e.g. 'dry face'",
    "used_for_event": "is used for an event or activity, e.g. 'walk the dog'",
    "used_for_audience": "is used for a kind of person, e.g. 'daycare worker'",
    "used_in_location": "is used in a place, e.g. 'bedroom'",
    "used_in_body": "is used on a body part or condition, e.g. 'sensitive skin'",
    "used_with": "is used with another product, e.g. 'surface cover'",
    "used_by": "is used by a role, e.g. 'nurse'",
    "used_as": "is used as something, e.g. 'gift'",
    "used_on": "is used on an occasion or time, e.g. 'winter'",
    "used_to": "is used to achieve a goal, e.g. 'stay awake'",
    "capable_of": "is capable of something, e.g. 'keeping drinks cold'",
    "is_a": "is a kind of thing, e.g. 'smart watch'",
    "cause": "causes an effect, e.g. 'better sleep'",
    "x_is_a": "the buyer is a kind of person, e.g. 'pregnant woman'",
    "x_want": "the buyer wants to do something, e.g. 'play tennis'",
}

_STOP = {"a", "an", "the", "to", "of", "and", "or", "for", "with", "in", "on", "it", "its", "their", "your"}


def relations(session: Session | None = None) -> dict[str, str]:
    """The usable relations: seeds plus accepted proposals."""
    found = dict(SEED_RELATIONS)
    if session is not None:
        for row in session.scalars(select(GraphRelation).where(GraphRelation.status == "accepted")):
            found[row.name] = row.description
    return found


def _predicate(tail: str) -> str | None:
    words = [w for w in re.findall(r"[a-z]+", tail.lower())]
    if len(words) < 2:
        return None
    head = words[0] if words[0] not in _STOP else None
    return f"{head}_{words[1]}" if head and words[1] in _STOP else head


def mine_relation_proposals(
    session: Session, tails: Iterable[tuple[str, str, str]], *, min_support: int = 3, min_heads: int = 2
) -> list[GraphRelation]:
    """Propose relations from predicate patterns: ``tails`` are (head key, relation, tail). A leading verb
    (plus its preposition) that recurs across ``min_heads`` different heads and is not already a relation
    name becomes a ``proposed`` row for a person to accept or reject."""
    count: Counter[str] = Counter()
    heads: dict[str, set[str]] = defaultdict(set)
    examples: dict[str, list[str]] = defaultdict(list)
    known = set(relations(session))
    for head, _relation, tail in tails:
        pred = _predicate(tail)
        if pred is None or pred in known or any(pred in k.split("_") for k in known):
            continue
        count[pred] += 1
        heads[pred].add(head)
        if len(examples[pred]) < 5:
            examples[pred].append(tail)
    out = []
    for pred, n in count.most_common():
        if n < min_support or len(heads[pred]) < min_heads:
            continue
        row = session.get(GraphRelation, pred)
        if row is None:
            row = GraphRelation(name=pred, description=f"the product helps '{pred.replace('_', ' ')} ...'",
                                status="proposed", support=0, examples=[])
            session.add(row)
        if row.status == "proposed":
            row.support, row.examples = n, examples[pred]
        out.append(row)
    session.flush()
    return out


def _set_status(session: Session, name: str, status: str) -> GraphRelation:
    row = session.get(GraphRelation, name)
    if row is None:
        raise NotFoundError("relation proposal", name, fix="list proposals with `shelfwise graph relations`")
    row.status = status
    return row


def accept_relation(session: Session, name: str) -> GraphRelation:
    return _set_status(session, name, "accepted")


def reject_relation(session: Session, name: str) -> GraphRelation:
    return _set_status(session, name, "rejected")
