"""Shared test data for tests/search: a small catalog and an app with the hashing embedder (a test double)."""

from __future__ import annotations

from pathlib import Path

from shelfwise.app import Shelfwise
from shelfwise.config import EmbedderConfig, Settings
from shelfwise.store import Catalog, Listing
from shelfwise.store.models import ExtractedValue

LISTINGS = [
    {"id": "p-espresso", "title": "Stainless espresso machine with milk frother", "brand": "Brewmaster",
     "category_path": "Home > Kitchen > Coffee Machines", "bullets": ["15 bar pump", "steam wand"],
     "color": "silver", "rating_count": 1200},
    {"id": "p-grinder", "title": "Burr coffee grinder, 18 settings", "brand": "Brewmaster",
     "category_path": "Home > Kitchen > Coffee Grinders", "description": "Conical burrs for espresso and drip",
     "rating_count": 300},
    {"id": "p-beans", "title": "Dark roast whole coffee beans 1kg", "brand": "Andes",
     "category_path": "Grocery > Coffee > Beans", "description": "Single origin arabica", "rating_count": 5000},
    {"id": "p-runner", "title": "Lightweight running shoes for men", "brand": "Stride",
     "category_path": "Clothing > Shoes > Running", "color": "red", "rating_count": 800},
    {"id": "p-trail", "title": "Waterproof trail running shoe", "brand": "Stride",
     "category_path": "Clothing > Shoes > Running", "color": "blue", "rating_count": 150},
    {"id": "p-boot", "title": "Leather hiking boots", "brand": "Summit",
     "category_path": "Clothing > Shoes > Boots", "color": "brown", "rating_count": 90},
    {"id": "p-tent", "title": "Two person camping tent, 3 season", "brand": "Summit",
     "category_path": "Sports > Camping > Tents", "bullets": ["aluminium poles", "2.1 kg"], "rating_count": 400},
    {"id": "p-bag", "title": "Down sleeping bag for winter camping, -10C", "brand": "Summit",
     "category_path": "Sports > Camping > Sleeping Bags", "rating_count": 220},
    {"id": "p-headphones", "title": "Wireless noise cancelling headphones", "brand": "Sonix",
     "category_path": "Electronics > Audio > Headphones", "color": "black", "rating_count": 9000},
    {"id": "p-charger", "title": "USB-C fast charger 65W", "brand": "Voltix",
     "category_path": "Electronics > Accessories > Chargers", "color": "white", "rating_count": 2500},
]


def make_app(tmp_path: Path) -> Shelfwise:
    settings = Settings(home=tmp_path / "home", embedder=EmbedderConfig(backend="hashing"), search_embedder=EmbedderConfig(backend="hashing"))
    return Shelfwise.open(settings)


def ingest(sw: Shelfwise, listings: list[dict] = LISTINGS) -> None:
    with sw.db.session() as s:
        catalog = Catalog(s)
        for item in listings:
            catalog.upsert(Listing.model_validate(item), source="test")
        s.add(ExtractedValue(product_id="p-runner", attribute="sport", value="running", status="agreed",
                             is_current=True))
        s.add(ExtractedValue(product_id="p-trail", attribute="sport", value="trail running", status="agreed",
                             is_current=True))

