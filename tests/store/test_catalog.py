from pathlib import Path

import pytest
from sqlalchemy import select

from shelfwise.errors import InputError, NotFoundError, RowError
from shelfwise.store import AttributeSchema, AttributeSpec, Catalog, EventLog, Listing, read_listings
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


# -- damaged input files: every problem is named by line, and nothing after it is lost -------------------
def _items(rows):
    return {line: item for line, item in rows}


def test_csv_unclosed_quote_rejects_that_row_and_keeps_the_rows_after_it(tmp_path):
    f = tmp_path / "q.csv"
    f.write_text('id,title,description\n1,Tent,"unclosed quote\n2,Stove,ok\n3,Lamp,"fine"\n4,Mug,ok\n')
    items = _items(read_listings(f))
    assert isinstance(items[2], RowError) and "quote" in items[2].problem
    assert [items[n].id for n in (3, 4, 5)] == ["2", "3", "4"]


def test_csv_unclosed_quote_running_to_the_end_of_the_file_is_rejected(tmp_path):
    f = tmp_path / "q.csv"
    f.write_text('id,title,description\n1,Tent,"unclosed quote\n2,Stove,ok\n3,Lamp,ok\n')
    items = _items(read_listings(f))
    assert isinstance(items[2], RowError) and "never closed" in items[2].problem
    assert [items[3].id, items[4].id] == ["2", "3"]


@pytest.mark.parametrize("first", ['1,"Tent,Camping', '1,Tent,"Camping'])
def test_csv_quote_closed_by_a_later_inch_mark_is_caught(tmp_path, first):
    f = tmp_path / "q.csv"
    f.write_text(f'id,title,category_path\n{first}\n2,Stove,Camping\n3,Monitor 27",Electronics\n4,Mug,Home\n')
    items = _items(read_listings(f))
    assert isinstance(items[2], RowError) and "quote" in items[2].problem
    assert items[3].id == "2" and items[4].title == 'Monitor 27"' and items[5].id == "4"


def test_csv_multiline_cell_with_ragged_lines_is_one_row(tmp_path):
    f = tmp_path / "m.csv"
    f.write_text('id,title,description\n1,Tent,"Features:\nlight, warm, dry\nsmall"\n2,Stove,ok\n')
    items = _items(read_listings(f))
    assert items[2].description == "Features:\nlight, warm, dry\nsmall" and items[5].id == "2"


def test_csv_multiline_quoted_fields_still_work_and_are_numbered_by_their_first_line(tmp_path):
    f = tmp_path / "m.csv"
    f.write_text('id,title,description\n1,Tent,"two\nlines, with a comma"\n2,Stove,ok\n')
    items = _items(read_listings(f))
    assert items[2].description == "two\nlines, with a comma" and items[4].id == "2"


def test_non_utf8_file_is_refused_naming_the_byte_and_line(tmp_path):
    f = tmp_path / "latin1.csv"
    f.write_bytes("id,title\n1,Tent\n2,Caf\u00e9\n".encode("latin-1"))
    with pytest.raises(InputError) as exc:
        list(read_listings(f))
    assert "latin1.csv is not UTF-8 (byte 0xe9 at line 3)" in str(exc.value) and "UTF-8" in exc.value.fix


@pytest.mark.parametrize(("name", "body"), [("bom.csv", "id,title\n1,Tent\n"),
                                            ("bom.jsonl", '{"id": "1", "title": "Tent"}\n')])
def test_a_utf8_bom_is_ignored(tmp_path, name, body):
    f = tmp_path / name
    f.write_bytes(b"\xef\xbb\xbf" + body.encode())
    [(line, item)] = list(read_listings(f))
    assert line == 1 + name.endswith(".csv") and item.id == "1" and item.title == "Tent"


def test_csv_fields_longer_than_the_csv_default_limit_are_cut_not_fatal(tmp_path):
    from shelfwise.store.catalog import MAX_FIELD_CHARS
    from shelfwise.store.listing_files import CSV_FIELD_LIMIT

    f = tmp_path / "big.csv"
    f.write_text(f"id,title,description\n1,Tent,{'x' * 200_000}\n2,Huge,{'y' * (CSV_FIELD_LIMIT + 1)}\n3,Mug,ok\n")
    items = _items(read_listings(f))
    assert len(items[2].description) == MAX_FIELD_CHARS
    assert isinstance(items[3], RowError) and "longer than" in items[3].problem
    assert items[4].id == "3"


def test_jsonl_line_separator_inside_a_string_does_not_split_the_row(tmp_path):
    f = tmp_path / "l.jsonl"
    f.write_text('{"id": "1", "title": "a\u2028b"}\n{"id": "2", "title": "c"}\n', encoding="utf-8")
    assert [line for line, item in read_listings(f) if not isinstance(item, RowError)] == [1, 2]


def test_duplicate_ids_in_one_input_are_reported_and_the_last_row_wins(db):
    rows = [(1, Listing(id="a", title="first")), (2, Listing(id="b", title="b")), (3, Listing(id="a", title="last"))]
    with db.session() as s:
        report = Catalog(s).ingest(rows)
        assert report.duplicates == ["a"] and s.get(Product, "a").title == "last"


def test_ingest_can_continue_one_report_over_several_batches(db):
    with db.session() as s:
        report = Catalog(s).ingest([(1, Listing(id="a", title="x"))])
    with db.session() as s:
        Catalog(s).ingest([(2, Listing(id="a", title="y"))], report=report)
    assert (report.added, report.updated, report.duplicates) == (1, 1, ["a"])


@pytest.mark.parametrize(("body", "expected"), [
    ("{not json", "not valid JSON (line 1"),
    ('{"category_path": "A"}', "a JSON list"),
    ('[{"category_path": "A", "attributes": [{"nam": "x"}]}]', "item 1: attributes.0.name"),
])
def test_schema_files_are_checked_before_anything_is_stored(tmp_path, body, expected):
    from shelfwise.store.listing_files import load_schemas

    f = tmp_path / "s.json"
    f.write_text(body)
    with pytest.raises(InputError) as exc:
        load_schemas(f)
    assert expected in str(exc.value) and exc.value.fix


def test_a_missing_schema_file_is_an_input_error(tmp_path):
    from shelfwise.store.listing_files import load_schemas

    with pytest.raises(InputError, match="cannot read"):
        load_schemas(tmp_path / "absent.json")


def test_unstorable_characters_in_seller_text_are_dropped_and_ids_refused(any_db):
    """A NUL (refused by PostgreSQL) or an unpaired surrogate would fail the whole ingest chunk."""
    import pytest as _pytest

    listing = Listing(id="n1", title="Tent\x00 2 person \ud800", bullets=["dome\x00"], brand="Acme\x00")
    assert (listing.title, listing.bullets, listing.brand) == ("Tent 2 person \ufffd", ["dome"], "Acme")
    with any_db.session() as s:
        assert Catalog(s).ingest([(0, listing)]).added == 1
    with _pytest.raises(ValueError, match="NUL"):
        Listing(id="n\x002", title="t")
