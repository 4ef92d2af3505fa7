"""CLI smoke tests: `shelfwise kb ...` and `shelfwise feedback ...` end to end on a SQLite home."""

import pytest
from typer.testing import CliRunner

from shelfwise.app import Shelfwise
from shelfwise.cli._common import console, err_console
from shelfwise.cli.main import app
from shelfwise.store.catalog import Catalog, Listing
from shelfwise.store.models import ExtractedValue

runner = CliRunner()


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("SHELFWISE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SHELFWISE_EMBEDDER__BACKEND", "hashing")
    for c in (console, err_console):  # wide tables, so cell text is not wrapped
        monkeypatch.setattr(c, "_width", 300)
    with Shelfwise.open() as sw, sw.db.session() as s:
        Catalog(s).ingest([(1, Listing(id="cof-1", title="Breakfast Blend K-Cup Pods", category_path="Grocery > Coffee",
                                       seller_id="s1"))])
    return tmp_path


def run(*args, code=0):
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, result.output
    return result.output


def test_kb_commands_round_trip(home):
    out = run("kb", "add", "--no-llm", "--category", "Grocery > Coffee", "--attribute", "item_form", "--text",
              "K-Cup is the item form, not the brand.", "--normalize", "k cup=K-Cup", "--example", "K-Cup Pods -> K-Cup")
    assert "learning #1: created" in out
    assert "K-Cup is the item form" in run("kb", "list", "--status", "active")
    show = run("kb", "show", "1")
    assert "'k cup' -> 'K-Cup'" in show and "expert" in show
    assert "version 2" in run("kb", "edit", "1", "--text", "K-Cup names the pod item form.", "--reason", "shorter")
    assert "retired" in run("kb", "retire", "1", "--reason", "test")
    assert "restored to version 2" in run("kb", "rollback", "1", "2")
    hist = run("kb", "history", "1")
    assert "rolled_back" in hist and "shorter" in hist
    assert "Coffee" in run("kb", "tree")
    run("kb", "add", "--no-llm", "--space", "staging", "--text", "Roast is light, medium or dark.",
        "--category", "Grocery > Coffee", "--attribute", "Roast type")
    assert "1 created" in run("kb", "promote", "--from", "staging", "--to", "production")
    assert "Roast is light" in run("kb", "list")
    with Shelfwise.open() as sw, sw.db.session() as s:
        s.add(ExtractedValue(product_id="cof-1", attribute="item_form", value="K-Cup", status="agreed",
                             model="qwen2.5-coder-0.5b", prompt_version="gen.v3", learning_ids=[1]))
    why = run("kb", "why", "cof-1", "item_form")
    assert "qwen2.5-coder-0.5b" in why and "gen.v3" in why and "K-Cup names the pod" in why
    run("kb", "edit", "1", "--text", "K-Cup is a pod item form.", "--reason", "after the value was stored")
    assert "was version 4 when the value was stored" in run("kb", "why", "cof-1", "item_form")


def test_kb_errors_are_clear(home):
    assert "no learning with id 99" in run("kb", "show", "99", code=1)
    assert "no extracted value" in run("kb", "why", "cof-1", "brand", code=1)
    assert "surface form=Canonical" in run("kb", "add", "--no-llm", "--text", "abc def", "--normalize", "oops",
                                          code=1)


def test_feedback_commands(home):
    assert "recorded as event" in run("feedback", "appeal", "cof-1", "--message", "brand is wrong",
                                      "--attribute", "brand", "--claimed-value", "GMCR")
    assert "recorded" in run("feedback", "return", "cof-1", "--reason", "not compatible with my brewer")
    assert "recorded" in run("feedback", "review", "cof-1", "--rating", "2", "--text", "weak")
    assert "recorded" in run("feedback", "listing-update", "cof-1", "--field", "title")
    assert "no product with id 'nope'" in run("feedback", "return", "nope", "--reason", "x", code=1)


def test_kb_add_uses_the_schemas_spelling_of_the_attribute_and_refuses_unknown_ones(home):
    run("kb", "add", "--no-llm", "--category", "coffee", "--attribute", "brand", "--text",
        "Brewhaus is a brand.", "--normalize", "brew haus=Brewhaus")
    with Shelfwise.open() as sw, sw.db.session() as s:
        from shelfwise.enrich.kb import KnowledgeBase

        assert KnowledgeBase(s).normalizers("Coffee", "Brand").get("brew haus") == "Brewhaus", \
            "stored as the schema's 'Brand', so the loop (which asks for 'Brand') uses it"
    out = run("kb", "add", "--no-llm", "--category", "Coffee", "--attribute", "Heel height", "--text",
              "Heels are measured in inches.", code=1)
    assert "has an attribute 'Heel height'" in out and "fix: use one of: Brand, " in out
    # A learning at a parent applies below it: the attributes of the schemas under it count.
    run("kb", "add", "--no-llm", "--category", "Grocery", "--attribute", "roast type", "--text",
        "Roast is light, medium or dark.")
    assert "Roast type" in run("kb", "list", "--category", "Grocery")


def test_error_text_is_printed_as_written_not_as_markup(home):
    assert "no extracted value with id '[bold]x/Brand'" in run("kb", "why", "[bold]x", "Brand", code=1)


def test_feedback_analyze_refuses_zero_sources_without_a_traceback(home):
    out = run("feedback", "analyze", "--min-sources", "0", code=2)
    assert "Traceback" not in out and "min-sources" in out
