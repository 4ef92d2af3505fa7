"""Bad or hostile input gets a clear 4xx (never a 500) and loses nothing; conflicts are 409s; on SQLite and on
PostgreSQL (``any_db``)."""

from __future__ import annotations

import threading
import time

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from shelfwise.api import create_app
from shelfwise.app import Shelfwise
from shelfwise.config import ApiKeyConfig, EmbedderConfig, Settings
from shelfwise.enrich.models import ReviewItem
from shelfwise.store import Catalog, Listing
from shelfwise.store.models import ExtractedValue

R = {"X-API-Key": "read-key"}
W = {"X-API-Key": "write-key"}
E = {"X-API-Key": "expert-key"}
J = {"content-type": "application/json"}
KEYS = [ApiKeyConfig(name="r", key="read-key", role="reader"), ApiKeyConfig(name="w", key="write-key", role="writer"),
        ApiKeyConfig(name="e", key="expert-key", role="expert")]
HUGE = "9" * 25


def _open(tmp_path, url: str | None = None, keys=KEYS) -> Shelfwise:  # type: ignore[no-untyped-def]
    extra = {"database_url": url} if url else {}
    sw = Shelfwise.open(Settings(home=tmp_path / "home", api_keys=keys, embedder=EmbedderConfig(backend="hashing"),
                                 search_embedder=EmbedderConfig(backend="hashing"), **extra))
    with sw.db.session() as s:
        for item in ({"id": "tent-1", "title": "Two person camping tent", "category_path": "Sports > Tents"},
                     {"id": "beans-1", "title": "Dark roast coffee beans 1kg", "category_path": "Grocery > Coffee"}):
            Catalog(s).upsert(Listing.model_validate(item), source="test")
    return sw


@pytest.fixture
def app_on(any_db, tmp_path):  # type: ignore[no-untyped-def]
    sw = _open(tmp_path, any_db.url)
    with TestClient(create_app(sw), raise_server_exceptions=False) as c:
        yield sw, c
    sw.close()


@pytest.fixture
def client(app_on):  # type: ignore[no-untyped-def]
    return app_on[1]


def _item(sw: Shelfwise) -> int:
    with sw.db.session() as s:
        item = ReviewItem(product_id="beans-1", category_path="Grocery > Coffee", attribute="roast",
                          candidates=[{"worker": "gen", "value": "medium"}], proposed="medium", confidence=0.3,
                          reason="r", status="open")
        s.add(item)
        s.flush()
        return item.id


# 1 -- text the log could not give back -------------------------------------------------------------------
@pytest.mark.parametrize(("path", "raw"), [
    ("/events", b'{"type":"seller_appeal","product_id":"tent-1","message":"hi \\ud800 there"}'),
    ("/events", b'{"type":"seller_appeal","product_id":"tent-1","message":"nul \\u0000 here"}'),
    ("/events", b'{"type":"review","product_id":"tent-1","text":"ok","extra":{"k":"\\udc00"}}'),
    ("/feedback/appeal", b'{"product_id":"tent-1","message":"x \\udc00 y"}'),
    ("/feedback/review", b'{"product_id":"tent-1","rating":3,"text":"x \\udc00 y"}'),
    ("/feedback/return", b'{"product_id":"tent-1","reason":"x \\u0000 y"}'),
])
def test_unstorable_text_is_refused_at_the_door_and_the_log_stays_readable(client, path, raw):
    res = client.post(path, headers={**W, **J}, content=raw)
    assert res.status_code == 422, res.text
    assert res.json()["fix"] and ("surrogate" in res.text or "NUL" in res.text)
    assert client.get("/events", headers=R).status_code == 200
    assert client.get("/events?type=seller_appeal", headers=R).json() == []


def test_unstorable_text_in_other_bodies_is_a_422(app_on):
    sw, client = app_on
    item = _item(sw)
    res = client.post(f"/review/{item}/resolve", headers={**E, **J}, content=b'{"value":"dark \\ud800"}')
    assert res.status_code == 422, res.text
    assert client.get("/review", headers=R).json()[0]["id"] == item, "the item is still open"
    assert client.post("/graph/recommend", headers={**R, **J}, content=b'{"product_ids":["\\ud800"]}').status_code == 422
    assert client.post("/kb/learnings", headers={**E, **J},
                       content=b'{"text":"Roast is \\u0000 dark","category_path":"Grocery"}').status_code == 422


# 2 -- database limits (varchar widths, NUL) ----------------------------------------------------------------
def test_an_overlong_trace_id_is_replaced_not_a_500(client):
    ev = {"type": "click", "product_id": "tent-1", "query": "q"}
    res = client.post("/events", headers={**W, "x-trace-id": "T" * 65}, json=ev)
    assert res.status_code == 200, res.text
    fresh = res.headers["x-trace-id"]
    assert fresh != "T" * 65 and 0 < len(fresh) <= 64
    assert client.get("/events?type=click", headers=R).json()[0]["trace_id"] == fresh


@pytest.mark.parametrize("key", ["", "k" * 201])
def test_bad_idempotency_keys_are_a_422(client, key):
    res = client.post("/events", headers=W, params={"idempotency_key": key},
                      json={"type": "click", "product_id": "tent-1", "query": "q"})
    assert res.status_code == 422, res.text
    assert client.get("/events?type=click", headers=R).json() == []


def test_a_nul_in_one_listing_rejects_that_row_only(client):
    res = client.post("/products", headers={**W, **J}, content=b'[{"id":"s3","title":"nul \\u0000 here"},'
                                                                b'{"id":"s4","title":"fine"}]')
    assert res.status_code == 200, res.text
    body = res.json()
    assert body["added"] == 1 and body["rejected"][0]["index"] == 0 and "NUL" in body["rejected"][0]["problem"]


@pytest.mark.parametrize("path", ["/products/a%00b", "/graph/products/a%00b/intents", "/kb/why/beans-1/%00",
                                  "/graph/intents/products?intent=%00", "/events?product_id=a%00"])
def test_nul_in_a_path_or_query_is_a_4xx(client, path):
    assert client.get(path, headers=R).status_code in (404, 422)


# 3 -- one answer wins --------------------------------------------------------------------------------------
def test_concurrent_resolutions_one_wins_the_other_is_a_409(app_on, monkeypatch):
    from shelfwise.enrich import product

    sw, client = app_on
    item = _item(sw)
    original = product.store_value

    def slow(*a, **k):  # type: ignore[no-untyped-def]
        time.sleep(0.3)  # widen the window between the status check and the write
        return original(*a, **k)

    monkeypatch.setattr(product, "store_value", slow)
    out: dict[str, int] = {}

    def go(value: str) -> None:
        out[value] = client.post(f"/review/{item}/resolve", headers=E, json={"value": value, "learn": False}
                                 ).status_code

    threads = [threading.Thread(target=go, args=(v,)) for v in ("dark", "light")]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert sorted(out.values()) == [200, 409], out
    with sw.db.session() as s:
        current = s.query(ExtractedValue).filter_by(product_id="beans-1", attribute="roast", is_current=True).all()
    assert len(current) == 1
    again = client.post(f"/review/{item}/resolve", headers=E, json={"value": "x", "learn": False})
    assert again.status_code == 409 and again.json()["error"] == "ConflictError"


def test_concurrent_approvals_of_a_learning_one_wins(client):
    lid = client.post("/kb/learnings", headers=E, json={"text": "Roast level is light, medium or dark.",
                                                       "category_path": "Grocery > Coffee", "status": "proposed"}
                      ).json()["learning_id"]
    codes: list[int] = []
    threads = [threading.Thread(target=lambda: codes.append(
        client.post(f"/kb/learnings/{lid}/approve", headers=E).status_code)) for _ in range(4)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert sorted(codes) == [200, 409, 409, 409], codes
    history = client.get(f"/kb/learnings/{lid}", headers=R).json()["history"]
    assert [h["action"] for h in history].count("approved") == 1
    client.post(f"/kb/learnings/{lid}/retire", headers=E, json={"reason": "too broad"})
    assert client.post(f"/kb/learnings/{lid}/retire", headers=E, json={"reason": "again"}).status_code == 409


# 5 -- events the system writes itself ----------------------------------------------------------------------
@pytest.mark.parametrize("event", [
    {"type": "supervisor_ruling", "product_id": "beans-1", "attribute": "roast", "value": "light"},
    {"type": "learning_change", "learning_id": 1, "action": "approved"},
    {"type": "extraction", "product_id": "beans-1", "attribute": "roast", "value": "light", "status": "gold"},
    {"type": "listing_ingested", "product_id": "beans-1"},
    {"type": "disagreement", "product_id": "beans-1", "attribute": "roast"},
])
def test_internal_event_types_cannot_be_forged_through_events(client, event):
    before = client.get(f"/events?type={event['type']}", headers=R).json()
    res = client.post("/events", headers=W, json=event)
    assert res.status_code == 422, res.text
    assert "/" in res.json()["fix"]  # names the route to use
    assert client.get(f"/events?type={event['type']}", headers=R).json() == before


@pytest.mark.parametrize("event", [
    {"type": "seller_appeal", "product_id": "beans-1", "message": "it is medium"},
    {"type": "listing_updated", "product_id": "beans-1", "changed_fields": ["title"]},
    {"type": "customer_return", "product_id": "beans-1", "reason": "too bitter"},
    {"type": "review", "product_id": "beans-1", "rating": 2, "text": "meh"},
    {"type": "purchase", "product_id": "beans-1", "query": "coffee"},
])
def test_external_event_types_are_still_accepted(client, event):
    assert client.post("/events", headers=W, json=event).status_code == 200


# 6, 7, 9, 10 -- bounds ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("method", "path", "body"), [
    ("POST", "/graph/recommend", {"product_ids": [f"p{i}" for i in range(101)]}),
    ("GET", "/review?limit=-1", None), ("GET", "/review?limit=0", None), ("GET", "/review?limit=1001", None),
    ("GET", "/review?status=bogus", None),
    ("GET", "/kb/learnings?limit=0", None), ("GET", "/kb/learnings?offset=-1", None),
    ("GET", "/enrich/health?limit=0", None),
    ("GET", f"/events?since_id={HUGE}", None), ("POST", f"/review/{HUGE}/resolve", {"value": "x"}),
    ("GET", f"/kb/learnings/{HUGE}", None), ("POST", f"/kb/learnings/1/rollback/{HUGE}", None),
    ("POST", "/kb/learnings", {"text": "Some text here", "category_path": "A" * 600}),
    ("POST", "/kb/learnings", {"text": "Another learning", "examples": ["x"] * 9}),
])
def test_out_of_range_input_is_a_422(client, method, path, body):
    res = client.request(method, path, headers=E, json=body)
    assert res.status_code == 422, res.text


def test_an_unknown_space_is_not_created_by_a_typo(client):
    new = {"text": "A brand new learning in a made-up space", "category_path": "Grocery"}
    res = client.post("/kb/learnings?space=anything-goes", headers=E, json=new)
    assert res.status_code == 404 and "production" in res.json()["fix"]
    assert client.get("/kb/learnings?space=anything-goes", headers=R).status_code == 404
    assert client.post("/kb/learnings?space=staging", headers=E, json=new).status_code == 200
    assert len(client.get("/kb/learnings?space=staging&limit=1", headers=R).json()) == 1


# 11 -- idempotency -------------------------------------------------------------------------------------------
def test_an_idempotency_key_reused_for_another_event_is_a_409(client):
    first = {"type": "purchase", "product_id": "beans-1", "query": "coffee"}
    a = client.post("/events?idempotency_key=order-1", headers=W, json=first)
    assert client.post("/events?idempotency_key=order-1", headers=W, json=first).json() == a.json()
    b = client.post("/events?idempotency_key=order-1", headers=W, json={**first, "product_id": "tent-1"})
    assert b.status_code == 409 and "different event" in b.json()["detail"], b.text
    assert [e["product_id"] for e in client.get("/events?type=purchase", headers=R).json()] == ["beans-1"]


# 8, 12 -- metrics and error shapes ---------------------------------------------------------------------------
def test_made_up_methods_share_one_label_and_crashes_are_counted(tmp_path, monkeypatch):
    sw = _open(tmp_path)
    with TestClient(create_app(sw), raise_server_exceptions=False) as c:
        for i in range(3):
            c.request(f"BREW{i}", "/products", headers=R)
        from shelfwise.store import catalog

        def boom(*_a, **_k):  # type: ignore[no-untyped-def]
            raise RuntimeError("secret internals")

        monkeypatch.setattr(catalog.Catalog, "get", boom)
        crash = c.get("/products/tent-1", headers={**R, "x-trace-id": "crash-1"})
        metrics = c.get("/metrics").text
        openapi = c.get("/openapi.json").json()
    sw.close()
    assert crash.status_code == 500 and "secret" not in crash.text
    assert crash.json()["error"] == "InternalError" and "crash-1" in crash.json()["fix"]
    assert "BREW" not in metrics and 'method="other",route="/products"' in metrics
    assert 'shelfwise_http_request_seconds_count{method="GET",route="/products/{product_id}",status="500"}' in metrics
    assert openapi["components"]["securitySchemes"]["APIKeyHeader"]["name"] == "X-API-Key"


@pytest.mark.parametrize(("headers", "code"), [({}, 401), ({"X-API-Key": "wrong"}, 401), (R, 403)])
def test_auth_errors_have_the_same_shape_as_domain_errors(tmp_path, headers, code):
    sw = _open(tmp_path)
    with TestClient(create_app(sw)) as c:
        res = c.post("/products", headers=headers, json=[])
    sw.close()
    assert res.status_code == code and set(res.json()) == {"error", "detail", "fix"} and res.json()["fix"]


# 4 -- serve ------------------------------------------------------------------------------------------------
def test_serve_refuses_an_open_network_address_without_keys(tmp_path, monkeypatch):
    import uvicorn

    from shelfwise.cli.main import app

    monkeypatch.setenv("SHELFWISE_HOME", str(tmp_path / "home"))
    calls: list[tuple[str, int]] = []
    monkeypatch.setattr(uvicorn, "run", lambda _app, host, port, **_k: calls.append((host, port)))
    refused = CliRunner().invoke(app, ["serve", "--host", "0.0.0.0"])
    assert refused.exit_code == 2 and "--insecure-no-auth" in refused.output and calls == []
    local = CliRunner().invoke(app, ["serve"])
    assert local.exit_code == 0 and "http://127.0.0.1:8000" in local.output and calls == [("127.0.0.1", 8000)]
    forced = CliRunner().invoke(app, ["serve", "--host", "0.0.0.0", "--insecure-no-auth", "--port", "9001"])
    assert forced.exit_code == 0 and "NO AUTHENTICATION" in forced.output and calls[-1] == ("0.0.0.0", 9001)
