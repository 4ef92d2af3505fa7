"""Behaviour pairs in: search→purchase (query, product) and co-purchase (product, product), with counts.

Sources: the event log (``purchase`` events with a query; co-purchases = products bought in the same
session — payload ``session_id`` — or, failing that, the same trace), a JSONL file, or the public data
(IntentionQA co-purchase pairs; ESCI queries with their Exact-judged products standing in for
search→purchase, since the ESCI subset has judgements, not purchase logs)."""

from __future__ import annotations

import json
import random
import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from itertools import combinations
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import select
from sqlalchemy.orm import Session

from ..errors import InputError, RowError
from ..store.events import EventLog
from ..store.models import Product

__all__ = [
    "BehaviourPair",
    "ProductInfo",
    "catalog_products",
    "check_known_products",
    "load_esci",
    "load_intentionqa",
    "pairs_from_events",
    "pairs_from_file",
    "product_type_of",
    "read_text",
    "split_pairs",
]

Kind = Literal["search_buy", "co_buy"]


class ProductInfo(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    title: str = Field(min_length=1)
    product_type: str = ""
    category: str = ""


class BehaviourPair(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: Kind
    product_ids: tuple[str, ...] = Field(min_length=1, max_length=2)
    query: str | None = None
    count: int = Field(1, ge=1)  # purchases (search_buy) or sessions with both (co_buy)
    impressions: int = Field(0, ge=0)  # times the product was shown for the query (0 = unknown)

    @field_validator("product_ids", mode="before")
    @classmethod
    def _ids_as_text(cls, v: Any) -> Any:
        # numeric ids (SKU numbers exported from a spreadsheet) are ids, as in listings (store.catalog)
        if isinstance(v, list | tuple):
            return [str(i) if isinstance(i, int) and not isinstance(i, bool) else i for i in v]
        return v

    @property
    def key(self) -> str:
        if self.kind == "search_buy":
            return f"search_buy:{(self.query or '').strip().lower()}|{self.product_ids[0]}"
        return "co_buy:" + "|".join(sorted(self.product_ids))

    @property
    def purchase_rate(self) -> float | None:
        return self.count / self.impressions if self.impressions else None


_TYPE_CUT = re.compile(r",| - | with | for | by |\(|\|", re.IGNORECASE)


def product_type_of(title: str, category: str = "", declared: str = "") -> str:
    """A product type: the declared one, else the last two alphabetic words of the title's head phrase
    (``Coleman Sundome 4-Person Camping Tent with Rainfly`` → ``camping tent``). Crude but cheap and
    deterministic; the enrich step's extracted ``product_type`` wins when present."""
    if declared:
        return declared.strip().lower()
    head = _TYPE_CUT.split(title, maxsplit=1)[0]
    words = [w for w in re.findall(r"[A-Za-z][A-Za-z'&-]*", head) if not any(c.isdigit() for c in w)]
    words = [w for w in words if "-" not in w or w.lower().endswith(("-up", "-in"))]
    if not words:
        return category.split(">")[-1].strip().lower()
    return " ".join(words[-2:]).lower()


def catalog_products(session: Session, ids: Iterable[str] | None = None) -> dict[str, ProductInfo]:
    stmt = select(Product).where(Product.deleted.is_(False))
    if ids is not None:
        stmt = stmt.where(Product.id.in_(list(ids)))
    out = {}
    for p in session.scalars(stmt):
        declared = str((p.extra or {}).get("product_type") or "")
        out[p.id] = ProductInfo(id=p.id, title=p.title, category=p.category_path,
                                product_type=product_type_of(p.title, p.category_path, declared))
    return out


def pairs_from_events(session: Session, *, since_id: int = 0) -> list[BehaviourPair]:
    """Aggregate purchases (and impressions) from the event log into counted pairs."""
    log = EventLog(session)
    shown: Counter[tuple[str, str]] = Counter()
    bought: Counter[tuple[str, str]] = Counter()
    baskets: dict[str, set[str]] = defaultdict(set)
    for stored in log.read(["search_impression", "purchase"], since_id=since_id):
        ev = stored.event
        if ev.type == "search_impression":
            for pid in ev.product_ids:
                shown[(ev.query.strip().lower(), pid)] += 1
            continue
        if not ev.product_id:
            continue
        if ev.query:
            bought[(ev.query.strip().lower(), ev.product_id)] += 1
        basket = (ev.model_extra or {}).get("session_id") or stored.trace_id
        if basket:
            baskets[str(basket)].add(ev.product_id)
    pairs = [BehaviourPair(kind="search_buy", query=q, product_ids=(p,), count=n, impressions=shown[(q, p)])
             for (q, p), n in bought.items()]
    co: Counter[tuple[str, str]] = Counter()
    for items in baskets.values():
        for a, b in combinations(sorted(items), 2):
            co[(a, b)] += 1
    pairs += [BehaviourPair(kind="co_buy", product_ids=ab, count=n) for ab, n in co.items()]
    return pairs


def read_text(path: Path | str, what: str) -> str:
    """A user-named file as text: UTF-8 (a byte-order mark dropped), or an ``InputError`` that says why not."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except IsADirectoryError:
        raise InputError(f"{path} is a directory, not a {what}", fix=f"pass the path of the {what} itself") from None
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}", fix=f"check the path of the {what}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InputError(f"{path} is not UTF-8 (byte 0x{data[exc.start]:02x} at line {line}); nothing was read",
                         fix="re-save the file as UTF-8") from None


def pairs_from_file(path: Path | str) -> tuple[list[BehaviourPair], list[RowError]]:
    """JSONL, one pair per line: {"kind", "product_ids", "query"?, "count"?, "impressions"?}. Bad rows are
    reported with their line number and field; good rows are kept."""
    pairs, errors = [], []
    # split("\n"), not splitlines(): JSON strings may hold U+2028 and friends, which splitlines breaks on
    for n, line in enumerate(read_text(path, "pairs file").split("\n"), start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            errors.append(RowError(str(path), n, f"not valid JSON ({exc.msg} at column {exc.colno})"))
            continue
        if not isinstance(data, dict):
            errors.append(RowError(str(path), n, f"expected a JSON object, got {type(data).__name__}"))
            continue
        try:
            pair = BehaviourPair.model_validate(data)
        except ValidationError as exc:
            errors.append(RowError(str(path), n, "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'row'}: {e['msg']}" for e in exc.errors()[:3])))
            continue
        if pair.kind == "search_buy" and not (pair.query or "").strip():
            errors.append(RowError(str(path), n, "query: a search_buy pair needs a non-empty query"))
            continue
        pairs.append(pair)
    return pairs, errors


def check_known_products(pairs: Iterable[BehaviourPair], products: dict[str, ProductInfo]
                         ) -> tuple[list[BehaviourPair], list[BehaviourPair]]:
    """Split pairs into (usable, with unknown products)."""
    good, unknown = [], []
    for p in pairs:
        (good if all(pid in products for pid in p.product_ids) else unknown).append(p)
    return good, unknown


def load_intentionqa(data_dir: Path | str) -> tuple[list[BehaviourPair], dict[str, ProductInfo]]:
    path = Path(data_dir) / "intentionqa" / "QA_fullInfo_task1.jsonl"
    if not path.exists():
        raise InputError(f"{path} not found", fix="pass the data folder that holds intentionqa/")
    products: dict[str, ProductInfo] = {}
    counts: Counter[tuple[str, str]] = Counter()
    first_order: dict[tuple[str, str], tuple[str, str]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        for key in ("a", "b"):
            pid, title = row[f"item_{key}_id"], row[f"item_{key}_name"]
            products[pid] = ProductInfo(id=pid, title=title, product_type=product_type_of(title))
        ab = (row["item_a_id"], row["item_b_id"])
        # Co-purchase is symmetric: a pair the file states in both orders is one pair with both counts.
        unordered = (min(ab), max(ab))
        first_order.setdefault(unordered, ab)
        counts[unordered] += 1  # assertions per pair ~ evidence strength
    pairs = [BehaviourPair(kind="co_buy", product_ids=first_order[u], count=n) for u, n in counts.items()]
    return pairs, products


def load_esci(data_dir: Path | str, queries: set[str] | None = None
              ) -> tuple[list[BehaviourPair], dict[str, ProductInfo]]:
    """ESCI queries with Exact (rating 100) products as stand-in search→purchase pairs."""
    root = Path(data_dir) / "esci-us-judgments-subset"
    if not root.exists():
        raise InputError(f"{root} not found", fix="pass the data folder that holds esci-us-judgments-subset/")
    products: dict[str, ProductInfo] = {}
    for line in (root / "esci_us_products.jsonl").read_text(encoding="utf-8").splitlines():
        d = json.loads(line)
        cat = " > ".join(d.get("category") or [])
        products[d["asin"]] = ProductInfo(id=d["asin"], title=d["title"] or d["asin"], category=cat,
                                          product_type=product_type_of(d["title"] or "", cat))
    pairs = []
    for line in (root / "esci_us_qrels.tsv").read_text(encoding="utf-8").splitlines()[1:]:
        _qid, query, asin, rating = line.split("\t")
        if float(rating) >= 100 and (queries is None or query in queries) and asin in products:
            pairs.append(BehaviourPair(kind="search_buy", query=query, product_ids=(asin,)))
    return pairs, products


def split_pairs(pairs: list[BehaviourPair], heldout_fraction: float = 0.3, seed: int = 0
                ) -> tuple[list[BehaviourPair], list[BehaviourPair]]:
    """Seeded split by pair key into (train, held-out)."""
    keys = sorted({p.key for p in pairs})
    random.Random(seed).shuffle(keys)
    held = set(keys[: round(len(keys) * heldout_fraction)])
    return [p for p in pairs if p.key not in held], [p for p in pairs if p.key in held]
