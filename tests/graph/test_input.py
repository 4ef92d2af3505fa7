"""Behaviour input and sampling."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from shelfwise import graph
from shelfwise.errors import RowError
from shelfwise.graph import (
    BehaviourPair,
    SamplingConfig,
    pairs_from_events,
    pairs_from_file,
    sample_pairs,
    split_pairs,
)
from shelfwise.graph.behaviour import ProductInfo, product_type_of
from shelfwise.graph.sampling import query_specificity
from shelfwise.store import EventLog
from shelfwise.store.events import Purchase, SearchImpression


def test_public_names_exist():
    for name in graph.__all__:
        assert getattr(graph, name) is not None, name


def test_pairs_from_events_counts_search_buys_and_same_session_co_purchases(gsw):
    with gsw.db.session() as s:
        log = EventLog(s)
        log.append(SearchImpression(query="Camping", decision_id="d1", product_ids=["tent-1", "bag-1"]))
        log.append(SearchImpression(query="camping", decision_id="d2", product_ids=["tent-1"]))
        log.append(Purchase(product_id="tent-1", query="camping", session_id="s1"))
        log.append(Purchase(product_id="bag-1", query="camping", session_id="s1"))
        log.append(Purchase(product_id="tent-1", query="camping", session_id="s2"))
        log.append(Purchase(product_id="cof-1", session_id="s3"))  # alone in its session: no co-purchase
    with gsw.db.session() as s:
        pairs = {p.key: p for p in pairs_from_events(s)}
    assert pairs["search_buy:camping|tent-1"].count == 2
    assert pairs["search_buy:camping|tent-1"].impressions == 2
    assert pairs["search_buy:camping|tent-1"].purchase_rate == 1.0
    assert pairs["co_buy:bag-1|tent-1"].count == 1
    assert not any("cof-1" in k and k.startswith("co_buy") for k in pairs)


def test_pairs_file_reports_bad_rows_and_keeps_good_ones(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text("\n".join([
        json.dumps({"kind": "co_buy", "product_ids": ["a", "b"], "count": 3}),
        "{not json",
        json.dumps({"kind": "search_buy", "product_ids": ["a"], "query": "  "}),
        json.dumps({"kind": "teleport", "product_ids": ["a"]}),
    ]))
    pairs, errors = pairs_from_file(path)
    assert [p.key for p in pairs] == ["co_buy:a|b"]
    assert [e.line for e in errors] == [2, 3, 4] and all(isinstance(e, RowError) for e in errors)


def test_split_is_seeded_and_disjoint():
    pairs = [BehaviourPair(kind="co_buy", product_ids=(f"a{i}", f"b{i}")) for i in range(50)]
    train, held = split_pairs(pairs, 0.3, seed=1)
    assert len(held) == 15 and not {p.key for p in train} & {p.key for p in held}
    assert [p.key for p in split_pairs(pairs, 0.3, seed=1)[1]] == [p.key for p in held]
    assert [p.key for p in split_pairs(pairs, 0.3, seed=2)[1]] != [p.key for p in held]


def test_product_type_from_title():
    assert product_type_of("Coleman Sundome 4-Person Camping Tent with Rainfly, Green") == "camping tent"
    assert product_type_of("Anything", declared="Air Mattress") == "air mattress"


def _products(spec: dict[str, str]) -> dict[str, ProductInfo]:
    return {pid: ProductInfo(id=pid, title=pid, product_type=t) for pid, t in spec.items()}


def test_sampling_thresholds_random_co_purchases_and_noisy_products():
    products = _products({"t1": "tent", "t2": "tent", "s1": "stove", "s2": "stove", "x": "sock", "hub": "cable",
                          **{f"o{i}": f"type{i}" for i in range(5)}})
    pairs = [
        BehaviourPair(kind="co_buy", product_ids=("t1", "s1"), count=3),
        BehaviourPair(kind="co_buy", product_ids=("t2", "s2"), count=2),
        BehaviourPair(kind="co_buy", product_ids=("t1", "x"), count=2),  # tent+sock seen once: random
        BehaviourPair(kind="co_buy", product_ids=("t1", "t2"), count=1),  # below min_count
        BehaviourPair(kind="search_buy", query="tent", product_ids=("t1",), count=5, impressions=500),  # rate 1%
        *[BehaviourPair(kind="co_buy", product_ids=("hub", f"o{i}"), count=2) for i in range(5)],
    ]
    cfg = SamplingConfig(min_count=2, min_purchase_rate=0.05, min_type_pair_count=2, max_partner_types=3)
    report = sample_pairs(pairs, products, cfg)
    assert {p.key for p in report.kept} == {"co_buy:s1|t1", "co_buy:s2|t2"}
    assert report.dropped["below min_count"] == 1
    assert report.dropped["below min_purchase_rate"] == 1
    assert report.dropped["random co-purchase (type pair too rare)"] == 6  # tent+sock and the hub's five
    off = sample_pairs(pairs, products, SamplingConfig(min_type_pair_count=1, max_partner_types=3))
    assert off.dropped["product co-bought with too many types"] == 5


def test_broad_queries_come_first():
    products = _products({"a": "tent", "b": "stove", "c": "lamp", "d": "tent"})
    pairs = [BehaviourPair(kind="search_buy", query="coleman 4 person dome tent green", product_ids=("d",)),
             *[BehaviourPair(kind="search_buy", query="camping", product_ids=(p,)) for p in "abc"]]
    kept = sample_pairs(pairs, products, SamplingConfig(max_pairs=3)).kept
    assert [p.query for p in kept] == ["camping", "coleman 4 person dome tent green", "camping"]
    assert query_specificity("camping", __import__("collections").Counter({"tent": 1, "stove": 1})) < \
        query_specificity("coleman 4 person dome tent green", __import__("collections").Counter({"tent": 1}))


def test_bad_sampling_config_is_rejected():
    with pytest.raises(ValidationError):
        SamplingConfig(min_count=0)


def test_intentionqa_pair_stated_in_both_orders_is_one_pair_with_both_counts(tmp_path):
    from shelfwise.graph.behaviour import load_intentionqa

    folder = tmp_path / "intentionqa"
    folder.mkdir()
    rows = [("A", "B"), ("B", "A"), ("A", "B"), ("C", "A")]
    (folder / "QA_fullInfo_task1.jsonl").write_text("\n".join(json.dumps({
        "item_a_id": a, "item_b_id": b, "item_a_name": f"{a} cable", "item_b_name": f"{b} cable"}) for a, b in rows))
    pairs, products = load_intentionqa(tmp_path)
    assert sorted((p.product_ids, p.count) for p in pairs) == [(("A", "B"), 3), (("C", "A"), 1)]
    assert len({p.key for p in pairs}) == len(pairs) and set(products) == {"A", "B", "C"}


def test_pairs_file_reads_numeric_ids_and_a_bom_and_names_line_and_field(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text("\ufeff" + json.dumps({"kind": "co_buy", "product_ids": [3, 4]}) + "\n"
                    + json.dumps({"kind": "co_buy", "product_ids": [3, 4], "impressions": -1}) + "\n[1]\n",
                    encoding="utf-8")
    pairs, errors = pairs_from_file(path)
    assert [p.product_ids for p in pairs] == [("3", "4")]
    assert [(e.line, e.problem.split(":")[0]) for e in errors] == [(2, "impressions"), (3, "expected a JSON object, got list")]
