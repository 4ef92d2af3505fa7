"""The graph in the database: candidates' cascade outcome, kept edges with shared intent nodes, and the
queries over them (intents of a product, products of an intent, neighbours); networkx for traversal."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

import networkx as nx
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..errors import NotFoundError
from .cascade import CandView
from .models import GraphCandidate, GraphEdge, GraphEdgeProduct, GraphIntent

__all__ = ["EdgeView", "GraphStore"]


class EdgeView(dict):  # plain data for tables / JSON
    pass


class GraphStore:
    def __init__(self, session: Session) -> None:
        self.s = session

    # -- candidates -------------------------------------------------------------------------------
    def candidates(self, stage: str | None = None, pair_keys: list[str] | None = None) -> list[CandView]:
        stmt = select(GraphCandidate).order_by(GraphCandidate.id)
        if stage is not None:
            stmt = stmt.where(GraphCandidate.stage == stage)
        if pair_keys is not None:
            stmt = stmt.where(GraphCandidate.pair_key.in_(pair_keys))
        return [CandView(id=r.id, pair_key=r.pair_key, kind=r.kind, query=r.query, product_ids=list(r.product_ids),
                         relation=r.relation, tail=r.tail, scores=dict(r.scores or {}), stage=r.stage,
                         reason=r.reason) for r in self.s.scalars(stmt)]

    def tail_products(self, exclude_stage: str = "new") -> dict[str, Counter[str]]:
        out: dict[str, Counter[str]] = defaultdict(Counter)
        for tail, pids in self.s.execute(select(GraphCandidate.tail, GraphCandidate.product_ids)
                                         .where(GraphCandidate.stage != exclude_stage)):
            out[tail].update(pids)
        return out

    def save_outcome(self, cands: list[CandView]) -> None:
        for c in cands:
            row = self.s.get(GraphCandidate, c.id)
            if row is not None:
                row.stage, row.reason, row.scores = c.stage, c.reason[:500], dict(c.scores)

    # -- edges --------------------------------------------------------------------------------------
    def intent(self, text: str) -> GraphIntent:
        row = self.s.scalar(select(GraphIntent).where(GraphIntent.text == text))
        if row is None:
            row = GraphIntent(text=text)
            self.s.add(row)
            self.s.flush()
        return row

    def add_edges(self, kept: list[CandView], source: str = "") -> int:
        """Upsert an edge per kept candidate; a repeat of the same (head, relation, intent) adds support."""
        added = 0
        for c in kept:
            intent = self.intent(c.tail)
            edge = self.s.scalar(select(GraphEdge).where(GraphEdge.head == c.pair_key, GraphEdge.relation ==
                                                         c.relation, GraphEdge.intent_id == intent.id))
            plaus = c.scores.get("plausibility", (c.scores.get("human") or {}).get("plausible"))
            typ = c.scores.get("typicality", (c.scores.get("human") or {}).get("typical"))
            if edge is None:
                edge = GraphEdge(head=c.pair_key, kind=c.kind, query=c.query, relation=c.relation,
                                 intent_id=intent.id, support=1,
                                 plausibility=None if plaus is None else float(plaus),
                                 typicality=None if typ is None else float(typ),
                                 provenance={"candidate_ids": [c.id], "source": source,
                                             "human": "human" in c.scores})
                self.s.add(edge)
                self.s.flush()
                for pid in dict.fromkeys(c.product_ids):
                    self.s.add(GraphEdgeProduct(edge_id=edge.id, product_id=pid))
                added += 1
            elif c.id not in edge.provenance.get("candidate_ids", []):
                edge.support += 1
                edge.provenance = {**edge.provenance,
                                   "candidate_ids": [*edge.provenance.get("candidate_ids", []), c.id]}
        self.s.flush()
        return added

    def _edge_rows(self, stmt: Any) -> list[EdgeView]:
        rows = self.s.execute(stmt).all()
        ids = [r.GraphEdge.id for r in rows]
        prods: dict[int, list[str]] = defaultdict(list)
        if ids:
            for eid, pid in self.s.execute(select(GraphEdgeProduct.edge_id, GraphEdgeProduct.product_id)
                                           .where(GraphEdgeProduct.edge_id.in_(ids))):
                prods[eid].append(pid)
        return [EdgeView(id=r.GraphEdge.id, head=r.GraphEdge.head, kind=r.GraphEdge.kind, query=r.GraphEdge.query,
                         relation=r.GraphEdge.relation, intent=r.text, plausibility=r.GraphEdge.plausibility,
                         typicality=r.GraphEdge.typicality, support=r.GraphEdge.support,
                         product_ids=sorted(prods[r.GraphEdge.id])) for r in rows]

    def edges(self, limit: int | None = None) -> list[EdgeView]:
        stmt = (select(GraphEdge, GraphIntent.text).join(GraphIntent, GraphIntent.id == GraphEdge.intent_id)
                .order_by(GraphEdge.id))
        return self._edge_rows(stmt.limit(limit) if limit else stmt)

    def intents_of_product(self, product_id: str, k: int = 10) -> list[tuple[str, float]]:
        """(intent, score): score sums edge support weighted by typicality (0.5 when unscored)."""
        stmt = (select(GraphIntent.text, GraphEdge.support, GraphEdge.typicality)
                .join(GraphEdge, GraphEdge.intent_id == GraphIntent.id)
                .join(GraphEdgeProduct, GraphEdgeProduct.edge_id == GraphEdge.id)
                .where(GraphEdgeProduct.product_id == product_id))
        score: Counter[str] = Counter()
        for text, support, typ in self.s.execute(stmt):
            score[text] += support * (0.5 if typ is None else typ)
        return [(t, round(v, 4)) for t, v in score.most_common(k)]

    def products_of_intent(self, intent: str, k: int = 50) -> list[tuple[str, float]]:
        row = self.s.scalar(select(GraphIntent).where(GraphIntent.text == intent.strip().lower()))
        if row is None:
            raise NotFoundError("intent", intent, fix="list intents with `shelfwise graph show`")
        stmt = (select(GraphEdgeProduct.product_id, GraphEdge.support, GraphEdge.typicality)
                .join(GraphEdge, GraphEdge.id == GraphEdgeProduct.edge_id).where(GraphEdge.intent_id == row.id))
        score: Counter[str] = Counter()
        for pid, support, typ in self.s.execute(stmt):
            score[pid] += support * (0.5 if typ is None else typ)
        return [(p, round(v, 4)) for p, v in score.most_common(k)]

    def intent_texts(self) -> list[str]:
        return list(self.s.scalars(select(GraphIntent.text).order_by(GraphIntent.id)))

    def stats(self) -> dict[str, Any]:
        by_stage = dict(self.s.execute(select(GraphCandidate.stage, func.count()).group_by(GraphCandidate.stage)).all())
        by_rel = dict(self.s.execute(select(GraphEdge.relation, func.count()).group_by(GraphEdge.relation)).all())
        products = self.s.scalar(select(func.count(func.distinct(GraphEdgeProduct.product_id)))) or 0
        intents = self.s.scalar(select(func.count(GraphIntent.id))) or 0
        edges = self.s.scalar(select(func.count(GraphEdge.id))) or 0
        return {"candidates_by_stage": by_stage, "edges_by_relation": by_rel, "edges": edges,
                "intents": intents, "products": products, "nodes": intents + products}

    def to_networkx(self) -> nx.Graph:
        """Bipartite product ↔ intent graph; edge weight = summed support."""
        g = nx.Graph()
        stmt = (select(GraphEdgeProduct.product_id, GraphIntent.text, GraphEdge.relation, GraphEdge.support)
                .join(GraphEdge, GraphEdge.id == GraphEdgeProduct.edge_id)
                .join(GraphIntent, GraphIntent.id == GraphEdge.intent_id))
        for pid, text, rel, support in self.s.execute(stmt):
            p, i = f"product:{pid}", f"intent:{text}"
            g.add_node(p, kind="product")
            g.add_node(i, kind="intent")
            w = g.get_edge_data(p, i, {}).get("weight", 0)
            g.add_edge(p, i, weight=w + support, relation=rel)
        return g

    def neighbours(self, node: str, depth: int = 1) -> list[str]:
        """Nodes within ``depth`` hops of ``product:<id>`` or ``intent:<text>``."""
        g = self.to_networkx()
        if node not in g:
            raise NotFoundError("graph node", node, fix="use product:<id> or intent:<text> (see `shelfwise graph show`)")
        lengths = nx.single_source_shortest_path_length(g, node, cutoff=depth)
        return sorted((n for n, d in lengths.items() if d > 0), key=lambda n: (lengths[n], n))
