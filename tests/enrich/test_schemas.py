import json

import pytest
from pydantic import ValidationError

from shelfwise.enrich.schemas import builtin_schemas, extraction_model, install_schemas, load_schema_file
from shelfwise.errors import InputError
from shelfwise.store import Catalog

OAMINE = {"Shoes", "Vitamin", "Coffee", "Toothbrush", "Breakfast Cereal", "Sunscreen", "Conditioner",
          "Laundry Detergent", "Safety Mask", "Tea"}


def test_builtin_schemas_cover_oamine_demo_and_generic(db):
    paths = {s.category_path for s in builtin_schemas()}
    assert OAMINE <= paths
    assert {"", "Grocery > Coffee", "Shoes", "Sports & Outdoors > Camping", "Electronics"} <= paths
    with db.session() as s:
        install_schemas(s)
    with db.session() as s:
        cat = Catalog(s)
        coffee = cat.schema_for("Grocery > Coffee")
        assert coffee.category_path == "Grocery > Coffee" and "Roast type" in [a.name for a in coffee.attributes]
        assert cat.schema_for("Toys > Puzzles").category_path == ""  # the generic one


def test_bad_schema_file_says_which_entry(tmp_path):
    bad = tmp_path / "s.json"
    bad.write_text(json.dumps([{"category_path": "A", "attributes": [{"name": "x"}]}, {"attributes": []}]))
    with pytest.raises(InputError, match="schema #1"):
        load_schema_file(bad)
    (tmp_path / "t.json").write_text("{nope")
    with pytest.raises(InputError, match="fix"):
        load_schema_file(tmp_path / "t.json")


def test_extraction_model_bounds_every_string_and_requires_every_key():
    model = extraction_model(["Brand", "Net content"], max_chars=10)
    schema = model.model_json_schema()
    for prop in schema["properties"].values():
        assert any(alt.get("maxLength") == 10 for alt in prop["anyOf"] if alt.get("type") == "string")
    assert set(schema["required"]) == {"Brand", "Net content"}
    with pytest.raises(ValidationError):
        model.model_validate({"Brand": "x" * 11, "Net content": None})


def test_a_schema_file_that_is_not_utf8_is_an_input_error_with_a_fix(tmp_path):
    latin = tmp_path / "latin1.json"
    latin.write_bytes('[{"category_path": "Caf\u00e9", "attributes": [{"name": "x"}]}]'.encode("latin-1"))
    with pytest.raises(InputError, match="not UTF-8.*fix: save the schema file as UTF-8"):
        load_schema_file(latin)
