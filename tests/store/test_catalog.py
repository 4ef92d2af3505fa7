from pathlib import Path

from sqlalchemy import select

from shelfwise.errors import NotFoundError, RowError
from shelfwise.store import AttributeSchema, AttributeSpec, Catalog, EventLog, read_listings
from shelfwise.store.models import Product

FIX = Path(__file__).parent.parent / "fixtures" / "listings.jsonl"


def test_bad_rows_are_reported_with_line_numbers_and_good_rows_kept(any_db):
    rows = list(read_listings(FIX))
    errors = [item for _, item in rows if isinstance(item, RowError)]
    assert [e.line for e in errors] == [3, 4]
    assert "not valid JSON" in errors[0].problem and "title" in errors[1].problem
    with any_db.session() as s:
        report = Catalog(s).ingest(rows, source="listings.jsonl")
    assert (report.added, report.updated, report.unchanged, len(report.errors)) == (3, 0, 0, 2)
    with any_db.session() as s:
        assert s.get(Product, "4").bullets == ["one", "two"]


def test_reingest_is_idempotent_and_changes_are_versioned(any_db):
    rows = list(read_listings(FIX))
    with any_db.session() as s:
        Catalog(s).ingest(rows)
    with any_db.session() as s:
        again = Catalog(s).ingest(rows)
    assert (again.added, again.updated, again.unchanged) == (0, 0, 3)
    changed = FIX.read_text().replace("72 Count", "96 Count")
    with any_db.session() as s:
        upd = Catalog(s).ingest(read_listings(FIX, text=changed))
    assert upd.updated == 1
    with any_db.session() as s:
        p = s.get(Product, "p1")
        assert p.version == 2 and "96 Count" in p.title
        log = EventLog(s)
        assert log.count("listing_ingested") == 3
        [ev] = list(log.read("listing_updated"))
        assert ev.event.product_id == "p1" and ev.event.changed_fields == ["title"]


def test_csv_ingest(tmp_path, db):
    f = tmp_path / "l.csv"
    f.write_text('id,title,bullets,category_path\nc1,"A, quoted title",x | y,Home\nc2,,,\n')
    rows = list(read_listings(f))
    assert isinstance(rows[1][1], RowError) and rows[1][0] == 3
    with db.session() as s:
        rep = Catalog(s).ingest(rows)
        assert rep.added == 1 and s.get(Product, "c1").bullets == ["x", "y"]


def test_most_specific_schema_wins(any_db):
    with any_db.session() as s:
        c = Catalog(s)
        c.put_schema(AttributeSchema(category_path="", attributes=[AttributeSpec(name="brand")]))
        c.put_schema(AttributeSchema(category_path="Grocery > Coffee",
                                     attributes=[AttributeSpec(name="item form", allowed_values=["pods"])]))
    with any_db.session() as s:
        c = Catalog(s)
        assert c.schema_for("Grocery > Coffee > Pods").attributes[0].name == "item form"
        assert c.schema_for("Toys").attributes[0].name == "brand"
        try:
            c.get("nope")
        except NotFoundError as exc:
            assert "shelfwise ingest" in str(exc)
        else:
            raise AssertionError("expected NotFoundError")


def test_oversized_fields_are_capped(db):
    from shelfwise.store.catalog import MAX_FIELD_CHARS, Listing

    listing = Listing(id="big", title="t", description="x" * (MAX_FIELD_CHARS * 3))
    assert len(listing.description) == MAX_FIELD_CHARS
    with db.session() as s:
        Catalog(s).upsert(listing)
        assert s.scalar(select(Product.id)) == "big"
