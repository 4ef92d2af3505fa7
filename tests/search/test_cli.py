from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

from shelfwise.cli.main import app
from shelfwise.store import EventLog

from .search_fixtures import ingest, make_app

runner = CliRunner()


def _env(tmp_path, monkeypatch):
    monkeypatch.setenv("SHELFWISE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SHELFWISE_EMBEDDER__BACKEND", "hashing")
    sw = make_app(tmp_path)
    ingest(sw)
    return sw


def test_index_search_feedback_round_trip(tmp_path, monkeypatch):
    sw = _env(tmp_path, monkeypatch)
    out = runner.invoke(app, ["search", "espresso"])
    assert out.exit_code == 1 and "shelfwise index --rebuild" in out.output  # no index yet: clear error
    out = runner.invoke(app, ["index"])
    assert out.exit_code == 0 and "indexed 10 products" in out.output
    out = runner.invoke(app, ["index"])
    assert "0 re-indexed, 0 removed, 10 unchanged" in out.output
    out = runner.invoke(app, ["search", "red running shoes", "--explain", "-k", "3"])
    assert out.exit_code == 0, out.output
    assert "p-runner" in out.output and "understood: " in out.output and "lexical(" in out.output
    decision = re.search(r"decision (\w+)", out.output).group(1)
    out = runner.invoke(app, ["feedback", "click", "p-runner", "--decision", decision])
    assert out.exit_code == 0 and "recorded click" in out.output
    out = runner.invoke(app, ["feedback", "purchase", "p-nope", "--decision", decision])
    assert out.exit_code == 1 and "unknown product" in out.output
    out = runner.invoke(app, ["feedback", "add-to-cart", "p-runner", "--decision", "never"])
    assert out.exit_code == 1 and "never happened" in out.output
    out = runner.invoke(app, ["search", "   "])
    assert out.exit_code == 1 and "empty" in out.output
    with sw.db.session() as s:
        assert EventLog(s).count("click") == 1 and EventLog(s).count("search_impression") == 1
    sw.close()


def test_search_json_and_learn_commands(tmp_path, monkeypatch):
    sw = _env(tmp_path, monkeypatch)
    runner.invoke(app, ["index"])
    out = runner.invoke(app, ["search", "camping tent", "--json"])
    data = json.loads(out.output)
    assert data["hits"][0]["product_id"] == "p-tent" and 0 < data["propensity"] <= 1
    out = runner.invoke(app, ["search", "camping tent", "--rerank", "3"])  # the real cross-encoder
    assert out.exit_code == 0 and "cross-encoder" in out.output and "+ce" in out.output, out.output
    out = runner.invoke(app, ["search", "camping tent", "--rerank", "500"])
    assert out.exit_code == 2 and "less than or equal to 100" in " ".join(out.output.split())
    judgements = tmp_path / "j.json"
    judgements.write_text(json.dumps({"camping tent": {"p-tent": 3, "p-bag": 1},
                                      "espresso": {"p-espresso": 3, "p-beans": 1}}))
    out = runner.invoke(app, ["search-learn", "--judgements", str(judgements)])
    assert out.exit_code == 0 and "'queries': 2" in out.output
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    out = runner.invoke(app, ["search-learn", "--judgements", str(bad)])
    assert out.exit_code == 1 and "not JSON" in out.output
    out = runner.invoke(app, ["search-learn", "--window-minutes", "0"])
    assert out.exit_code == 0 and "bandit_updates" in out.output
    index_dir = tmp_path / "home" / "index"
    (index_dir / json.loads((index_dir / "manifest.json").read_text())["files"]["rows"]).write_bytes(b"broken")
    out = runner.invoke(app, ["index"])
    assert out.exit_code == 1 and "corrupt" in out.output and "--rebuild" in out.output
    out = runner.invoke(app, ["index", "--rebuild"])
    assert out.exit_code == 0
    sw.close()


def test_titles_print_as_text_not_rich_markup(tmp_path, monkeypatch):
    sw = _env(tmp_path, monkeypatch)
    ingest(sw, [{"id": "p-ring", "title": "Ring cable [/] adapter", "category_path": "Electronics > Cables"},
                {"id": "p-socks", "title": "Wool socks [pack of 3]", "category_path": "Clothing > Socks"}])
    runner.invoke(app, ["index"])
    out = runner.invoke(app, ["search", "ring cable adapter", "-k", "3"])
    assert out.exit_code == 0, out.output
    assert "[/]" in out.output
    out = runner.invoke(app, ["search", "wool socks", "-k", "1"])
    assert out.exit_code == 0 and "[pack of 3]" in out.output, out.output
    sw.close()


@pytest.mark.parametrize("data", [[1, 2], {"coffee": {"p-beans": "high"}}, {"coffee": ["p-beans"]}])
def test_malformed_judgement_files_name_the_format(tmp_path, monkeypatch, data):
    sw = _env(tmp_path, monkeypatch)
    runner.invoke(app, ["index"])
    path = tmp_path / "j.json"
    path.write_text(json.dumps(data))
    out = runner.invoke(app, ["search-learn", "--judgements", str(path)])
    assert out.exit_code == 1 and isinstance(out.exception, SystemExit), out.output
    assert "0..3" in out.output
    sw.close()


def test_a_broken_ranker_does_not_block_retraining_or_reindexing(tmp_path, monkeypatch):
    sw = _env(tmp_path, monkeypatch)
    runner.invoke(app, ["index"])
    (tmp_path / "home" / "index" / "ranker.json").write_text("nope")
    out = runner.invoke(app, ["search", "espresso"])
    assert out.exit_code == 1 and "shelfwise search-learn" in " ".join(out.output.split())
    assert runner.invoke(app, ["index"]).exit_code == 0
    assert runner.invoke(app, ["search-learn"]).exit_code == 0
    judgements = tmp_path / "j.json"
    judgements.write_text(json.dumps({"camping tent": {"p-tent": 3, "p-bag": 1},
                                      "espresso": {"p-espresso": 3, "p-beans": 1}}))
    assert runner.invoke(app, ["search-learn", "--judgements", str(judgements)]).exit_code == 0
    assert runner.invoke(app, ["search", "espresso"]).exit_code == 0
    sw.close()
