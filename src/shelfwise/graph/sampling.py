"""Which behaviour pairs are worth asking the model about (SPEC §2 "Sampling").

Drops pairs below the count / purchase-rate thresholds, co-purchases whose product types never go together
(a random co-purchase), and products that co-occur with too many different types (noise, not intent).
Orders search→purchase pairs broad-first: low query specificity is where the vocabulary gap is widest."""

from __future__ import annotations

import math
from collections import Counter, defaultdict

from pydantic import BaseModel, ConfigDict, Field

from .behaviour import BehaviourPair, ProductInfo

__all__ = ["SamplingConfig", "SamplingReport", "query_specificity", "sample_pairs"]


class SamplingConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    min_count: int = Field(1, ge=1, description="purchases / co-purchase sessions a pair needs")
    min_purchase_rate: float = Field(0.0, ge=0.0, le=1.0, description="purchases / impressions, when known")
    min_type_pair_count: int = Field(1, ge=1, description="co-purchases of different types need this many "
                                     "pairs with the same type pair (1 = off)")
    max_partner_types: int = Field(25, ge=1, description="drop products co-bought with more distinct types")
    broad_first: bool = True
    max_pairs: int | None = Field(None, ge=1)


class SamplingReport(BaseModel):
    kept: list[BehaviourPair]
    dropped: dict[str, int]


def query_specificity(query: str, bought_types: Counter[str]) -> float:
    """0 = broad (short query, purchases spread over many product types), 1 = specific."""
    total = sum(bought_types.values())
    if total and len(bought_types) > 1:
        probs = [n / total for n in bought_types.values()]
        spread = -sum(p * math.log(p) for p in probs) / math.log(len(bought_types))
    else:
        spread = 0.0
    length = min(1.0, len(query.split()) / 6)
    return round(0.5 * (1 - spread) + 0.5 * length, 4)


def sample_pairs(pairs: list[BehaviourPair], products: dict[str, ProductInfo],
                 config: SamplingConfig | None = None) -> SamplingReport:
    cfg = config or SamplingConfig()
    dropped: Counter[str] = Counter()

    def ptype(pid: str) -> str:
        return products[pid].product_type if pid in products else ""

    type_pairs: Counter[tuple[str, ...]] = Counter()
    partner_types: dict[str, set[str]] = defaultdict(set)
    query_types: dict[str, Counter[str]] = defaultdict(Counter)
    for p in pairs:
        if p.kind == "co_buy" and len(p.product_ids) == 2:
            a, b = p.product_ids
            type_pairs[tuple(sorted((ptype(a), ptype(b))))] += 1
            partner_types[a].add(ptype(b))
            partner_types[b].add(ptype(a))
        elif p.query:
            query_types[p.query.lower()][ptype(p.product_ids[0])] += p.count

    kept: list[tuple[float, BehaviourPair]] = []
    for p in pairs:
        if p.count < cfg.min_count:
            dropped["below min_count"] += 1
            continue
        rate = p.purchase_rate
        if rate is not None and rate < cfg.min_purchase_rate:
            dropped["below min_purchase_rate"] += 1
            continue
        if p.kind == "co_buy":
            if len(p.product_ids) != 2 or p.product_ids[0] == p.product_ids[1]:
                dropped["not a pair of two products"] += 1
                continue
            a, b = p.product_ids
            ta, tb = ptype(a), ptype(b)
            if ta != tb and type_pairs[tuple(sorted((ta, tb)))] < cfg.min_type_pair_count:
                dropped["random co-purchase (type pair too rare)"] += 1
                continue
            if max(len(partner_types[a]), len(partner_types[b])) > cfg.max_partner_types:
                dropped["product co-bought with too many types"] += 1
                continue
            priority = 0.5
        else:
            priority = query_specificity(p.query or "", query_types[(p.query or "").lower()])
        kept.append((priority if cfg.broad_first else 0.0, p))
    kept.sort(key=lambda item: (item[0], -item[1].count, item[1].key))
    # Round-robin over queries (each query's best pair before any query's second), so a cap on
    # max_pairs covers many broad queries instead of exhausting the single broadest one.
    seen: Counter[str] = Counter()
    ranked = []
    for prio, p in kept:
        q = (p.query or p.key).lower()
        ranked.append((seen[q], prio, p))
        seen[q] += 1
    ranked.sort(key=lambda item: (item[0], item[1], -item[2].count, item[2].key))
    out = [p for _, _, p in ranked]
    if cfg.max_pairs is not None and len(out) > cfg.max_pairs:
        dropped["beyond max_pairs"] += len(out) - cfg.max_pairs
        out = out[: cfg.max_pairs]
    return SamplingReport(kept=out, dropped=dict(dropped))
