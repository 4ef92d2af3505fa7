"""Uses of the graph beyond search: a hierarchical navigation tree (query → intents → product types →
attribute refinements, e.g. camping → winter camping → sleeping bag → 0 degree) and session-based
recommendation from a session's inferred intents."""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError
from sqlalchemy import select

from ..errors import InputError
from ..store.db import Database
from ..store.models import ExtractedValue
from .behaviour import catalog_products, read_text
from .serving import compute_expansion
from .store import GraphStore

__all__ = ["NavNode", "SessionInput", "navigation_tree", "read_session", "recommend", "render_tree"]

_REFINE = re.compile(r"\b(\d+(?:\.\d+)?[- ]?(?:person|count|pack|oz|ounce|lb|inch|in|degree|gb|mah|quart|qt|"
                     r"liter|l|w|ft|foot)s?)\b", re.IGNORECASE)


class NavNode(BaseModel):
    label: str
    kind: str  # query | intent | product_type | refinement
    score: float = 0.0
    product_ids: list[str] = Field(default_factory=list)
    children: list[NavNode] = Field(default_factory=list)


def _refinements(db: Database, products: dict[str, Any], pids: list[str], limit: int) -> list[NavNode]:
    """Attribute refinements: enrich's current extracted values when present, else size-like title tokens."""
    by_value: dict[str, list[str]] = defaultdict(list)
    with db.session() as s:
        for pid, attr, value in s.execute(select(ExtractedValue.product_id, ExtractedValue.attribute,
                                                 ExtractedValue.value)
                                          .where(ExtractedValue.product_id.in_(pids),
                                                 ExtractedValue.is_current.is_(True))):
            if value and attr != "product_type":
                by_value[f"{attr}: {value}"].append(pid)
    if not by_value:
        for pid in pids:
            for m in _REFINE.findall(products[pid].title if pid in products else ""):
                by_value[m.lower().replace(" ", "-")].append(pid)
    ranked = sorted(by_value.items(), key=lambda kv: (-len(kv[1]), kv[0]))[:limit]
    return [NavNode(label=v, kind="refinement", score=len(p), product_ids=sorted(set(p))) for v, p in ranked]


def navigation_tree(db: Database, embedder: Any, query: str, *, intents: int = 4, types: int = 3,
                    refinements: int = 3) -> NavNode:
    if not query.strip():
        raise InputError("empty navigation query", fix='pass a query, e.g. shelfwise navigate "camping"')
    hits = compute_expansion(db, embedder, query, k=intents)
    with db.session() as s:
        products = catalog_products(s, {p for h in hits for p in h.product_ids})
    root = NavNode(label=query, kind="query")
    for hit in hits:
        node = NavNode(label=hit.intent, kind="intent", score=hit.score, product_ids=list(hit.product_ids))
        by_type: dict[str, list[str]] = defaultdict(list)
        for pid in hit.product_ids:
            if pid in products:
                by_type[products[pid].product_type].append(pid)
        for ptype, pids in sorted(by_type.items(), key=lambda kv: (-len(kv[1]), kv[0]))[:types]:
            node.children.append(NavNode(label=ptype, kind="product_type", score=len(pids), product_ids=pids,
                                         children=_refinements(db, products, pids, refinements)))
        root.children.append(node)
    return root


NavNode.model_rebuild()


def render_tree(node: NavNode, tree: Any = None) -> Any:
    """A rich ``Tree`` of a navigation node (for the CLI and the demo)."""
    from rich.tree import Tree

    label = f"[bold]{node.label}[/] [dim]({node.kind}, {len(node.product_ids)} products)[/]"
    branch = Tree(label) if tree is None else tree.add(label)
    for child in node.children:
        render_tree(child, branch)
    return branch


class SessionInput(BaseModel):
    product_ids: list[str] = Field(default_factory=list)
    queries: list[str] = Field(default_factory=list)


def read_session(path: Path | str) -> SessionInput:
    """A session file: JSON {"product_ids": [...], "queries": [...]}, or JSONL events with product_id/query."""
    text = read_text(path, "session file")
    try:
        if text.lstrip().startswith("{") and "\n{" not in text.strip():
            return SessionInput.model_validate(json.loads(text))
        pids, queries = [], []
        for n, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                ev = json.loads(line)
                if not isinstance(ev, dict):
                    raise InputError(f"{path}:{n}: not a JSON object", fix="one event object per line")
                if ev.get("product_id"):
                    pids.append(str(ev["product_id"]))
                if ev.get("query"):
                    queries.append(str(ev["query"]))
        return SessionInput(product_ids=pids, queries=queries)
    except (json.JSONDecodeError, ValidationError) as exc:
        raise InputError(f"cannot read session file {path}: {exc}".splitlines()[0],
                         fix='write {"product_ids": [...], "queries": [...]} or JSONL events') from exc


def recommend(db: Database, source: Any, session: SessionInput, k: int = 5) -> dict[str, Any]:
    """Infer the session's intents (product intent tags + query expansion) and recommend products that
    serve them, excluding those already in the session."""
    if not session.product_ids and not session.queries:
        raise InputError("the session has no products and no queries", fix="add product_ids or queries")
    intents: Counter[str] = Counter()
    for pid in session.product_ids:
        for intent, score in source.product_intents(pid, 10):
            intents[intent] += score
    for q in session.queries:
        for hit in source.expand(q, 5):
            intents[hit.intent] += hit.score
    seen = set(session.product_ids)
    scores: Counter[str] = Counter()
    why: dict[str, str] = {}
    with db.session() as s:
        store = GraphStore(s)
        for intent, weight in intents.most_common(10):
            for pid, sc in store.products_of_intent(intent, 50):
                if pid not in seen:
                    scores[pid] += weight * sc
                    why.setdefault(pid, intent)
    return {"intents": intents.most_common(5),
            "recommendations": [{"product_id": p, "score": round(v, 4), "because": why[p]}
                                for p, v in scores.most_common(k)]}
