"""Graph fixtures: an app on a fresh SQLite database with the hashing embedder (a test double) and a
scripted graph.generator (a test double), plus a few products."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from shelfwise.app import Shelfwise
from shelfwise.config import Settings
from shelfwise.llm.backends.scripted import ScriptedBackend
from shelfwise.store import Catalog, Listing

PRODUCTS = [
    ("tent-1", "Coleman Sundome 4-Person Camping Tent with Rainfly, Green", "Sports > Camping"),
    ("bag-1", "TETON Sports Mummy Sleeping Bag, 0 Degree F, for Winter Camping", "Sports > Camping"),
    ("mat-1", "Intex Queen Air Mattress with Built-in Pump, 18 inch", "Sports > Camping"),
    ("boot-1", "Columbia Men's Bugaboot Snow Boot, Waterproof", "Shoes"),
    ("cof-1", "Starbucks Pike Place Ground Coffee, Medium Roast, 28 oz Bag", "Grocery > Coffee"),
]


def generation(*cands: tuple[str, str]) -> str:
    return json.dumps({"candidates": [{"n": i + 1, "relation": r, "tail": t} for i, (r, t) in enumerate(cands)]})


@pytest.fixture(name="generation")
def _generation_fixture():
    return generation


@pytest.fixture
def gsw(tmp_path) -> Iterator[Shelfwise]:
    app = Shelfwise.open(Settings(home=tmp_path / "home", embedder={"backend": "hashing"}, search_embedder={"backend": "hashing"}))
    with app.db.session() as s:
        cat = Catalog(s)
        for pid, title, cat_path in PRODUCTS:
            cat.upsert(Listing(id=pid, title=title, category_path=cat_path))
    yield app
    app.close()


@pytest.fixture
def scripted(gsw) -> ScriptedBackend:
    backend = ScriptedBackend("scripted-graph")
    gsw.llms.set_backend("graph.generator", backend)
    return backend
