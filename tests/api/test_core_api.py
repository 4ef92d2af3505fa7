"""The HTTP API's core routers through FastAPI's TestClient, against a real SQLite database."""

import pytest
from fastapi.testclient import TestClient

from shelfwise.api import create_app
from shelfwise.app import Shelfwise
from shelfwise.config import ApiKeyConfig, Settings


@pytest.fixture
def client(tmp_path):
    keys = [ApiKeyConfig(name="r", key="read-key", role="reader"),
            ApiKeyConfig(name="w", key="write-key", role="writer")]
    sw = Shelfwise.open(Settings(home=tmp_path / "home", api_keys=keys))
    with TestClient(create_app(sw)) as c:
        yield c
    sw.close()


W = {"X-API-Key": "write-key"}
R = {"X-API-Key": "read-key"}


def test_ingest_keeps_good_rows_and_names_bad_ones(client):
    res = client.post("/products", headers=W, json=[
        {"id": "a1", "title": "Coleman 4-Person Tent", "category_path": "Camping"},
        {"id": "a2"},
    ])
    assert res.status_code == 200, res.text
    body = res.json()
    assert body["added"] == 1 and body["rejected"][0]["index"] == 1 and "title" in body["rejected"][0]["problem"]
    got = client.get("/products/a1", headers=R).json()
    assert got["title"] == "Coleman 4-Person Tent" and got["version"] == 1


def test_roles_are_enforced(client):
    assert client.get("/products", headers={"X-API-Key": "wrong"}).status_code == 401
    assert client.get("/products").status_code == 401
    assert client.post("/products", headers=R, json=[]).status_code == 403
    assert client.get("/products", headers=R).status_code == 200


def test_errors_map_to_status_codes_with_the_fix(client):
    res = client.get("/products/nope", headers=R)
    assert res.status_code == 404 and "ingest it first" in res.json()["fix"]
    bad = client.post("/events", headers=W, json={"type": "click", "position": -3})
    assert bad.status_code == 422 and "event types" in bad.json()["fix"]


def test_events_append_idempotently_and_read_in_order_with_trace(client):
    ev = {"type": "click", "product_id": "a1", "query": "tent", "position": 0}
    first = client.post("/events?idempotency_key=k1", headers={**W, "x-trace-id": "t-123"}, json=ev)
    again = client.post("/events?idempotency_key=k1", headers=W, json=ev)
    assert first.json()["id"] == again.json()["id"] and first.headers["x-trace-id"] == "t-123"
    rows = client.get("/events?type=click", headers=R).json()
    assert len(rows) == 1 and rows[0]["trace_id"] == "t-123" and rows[0]["query"] == "tent"


def test_health_metrics_and_openapi(client):
    assert client.get("/health").json()["status"] == "ok"
    client.get("/products/nope", headers=R)
    metrics = client.get("/metrics").text
    assert "shelfwise_events_total" in metrics
    assert ('shelfwise_http_request_seconds_count{method="GET",route="/products/{product_id}",status="404"}'
            in metrics)
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/products", "/events", "/llm/usage"} <= set(paths)


@pytest.mark.parametrize(("event", "key"), [
    ({"type": "search_impression", "query": "tent", "decision_id": "d1", "product_ids": ["a1"]}, None),
    ({"type": "purchase", "product_id": "a1", "query": "tent", "decision_id": "d1"}, None),
    ({"type": "purchase", "product_id": "a1", "query": "tent"}, "search_impression:forged"),
    ({"type": "click", "product_id": "a1", "query": "tent"}, "search_feedback:x"),
])
def test_events_owned_by_search_are_refused_with_where_to_send_them(client, event, key):
    res = client.post("/events", headers=W, json=event, params={"idempotency_key": key} if key else {})
    assert res.status_code == 422, res.text
    assert "search" in res.json()["fix"] or "key" in res.json()["fix"]
    assert client.get("/events", headers=R).json() == []


def test_a_purchase_outside_search_is_still_accepted(client):
    res = client.post("/events", headers=W, params={"idempotency_key": "order-7"},
                      json={"type": "purchase", "product_id": "a1", "query": "tent", "session_id": "s1"})
    assert res.status_code == 200


@pytest.mark.parametrize("path", ["/products", "/events"])
@pytest.mark.parametrize("limit", [0, -1, 10_001])
def test_list_limits_are_bounded(client, path, limit):
    assert client.get(path, headers=R, params={"limit": limit}).status_code == 422


def test_the_events_router_reserves_the_keys_search_writes():
    from shelfwise.api.routers.events import RESERVED_KEY_PREFIXES
    from shelfwise.search.feedback import RESERVED_KEY_PREFIXES as SEARCH_OWNED
    from shelfwise.search.feedback import feedback_key, impression_key

    assert RESERVED_KEY_PREFIXES == SEARCH_OWNED
    assert impression_key("d").startswith(SEARCH_OWNED) and feedback_key("click", "p", "d").startswith(SEARCH_OWNED)
