from __future__ import annotations

import json
import re

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
    (tmp_path / "home" / "index" / "rows.pkl").write_bytes(b"broken")
    out = runner.invoke(app, ["index"])
    assert out.exit_code == 1 and "corrupt" in out.output and "--rebuild" in out.output
    out = runner.invoke(app, ["index", "--rebuild"])
    assert out.exit_code == 0
    sw.close()
