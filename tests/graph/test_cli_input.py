"""Bad input to the graph CLI ends in a message that names the fix (exit 1 or 2), never a traceback."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

import shelfwise.cli.graph as graph_cli
from shelfwise.app import Shelfwise
from shelfwise.cli.main import app
from shelfwise.config import RoleConfig
from shelfwise.errors import LLMError
from shelfwise.llm.backends.openai import OpenAIBackend
from shelfwise.llm.backends.scripted import ScriptedBackend

from ..llm.remote_stub import Reply, StubServer

runner = CliRunner()
ANSWER = json.dumps({"candidates": [{"relation": "used_for_event", "tail": "backyard campout"}]})


@pytest.fixture
def backends(monkeypatch, gsw):
    """The CLI's commands open an app on the test database whose graph.generator is ``backends[0]``."""
    chosen = [ScriptedBackend("scripted", responder=lambda req: ANSWER)]

    def opener(migrate=True):
        sw = Shelfwise.open(gsw.settings)
        sw.llms.set_backend("graph.generator", chosen[0])
        return sw
    monkeypatch.setattr(graph_cli, "open_app", opener)
    return chosen


def text(result) -> str:
    return " ".join(result.output.split())  # Rich wraps long messages


def write_pairs(path, *rows, bom=False):
    path.write_text(("\ufeff" if bom else "") + "\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


def test_a_directory_or_latin1_file_as_source_is_an_input_error(backends, tmp_path):
    r = runner.invoke(app, ["graph", "build", "--source", str(tmp_path)])
    assert r.exit_code == 1 and "is a directory" in text(r) and "fix:" in r.output
    latin1 = tmp_path / "pairs.jsonl"
    latin1.write_bytes('{"kind": "search_buy", "query": "café", "product_ids": ["tent-1"]}\n'.encode("latin-1"))
    r = runner.invoke(app, ["graph", "build", "--source", str(latin1)])
    assert r.exit_code == 1 and "not UTF-8" in text(r) and "re-save" in text(r)


@pytest.mark.parametrize("args, says", [
    (["--limit", "0"], "--limit"), (["--limit", "-1"], "--limit"), (["--executor", "foo"], "--executor"),
    (["--job", ""], "--job"),
])
def test_bad_build_options_are_usage_errors(backends, tmp_path, args, says):
    pairs = write_pairs(tmp_path / "p.jsonl", {"kind": "co_buy", "product_ids": ["tent-1", "bag-1"]})
    r = runner.invoke(app, ["graph", "build", "--source", str(pairs), *args])
    assert r.exit_code == 2 and says in r.output and "Traceback" not in r.output, r.output
    assert r.exception is None or isinstance(r.exception, SystemExit)


def test_bom_and_numeric_ids_are_read_and_bad_rows_name_line_and_field(backends, tmp_path):
    pairs = write_pairs(tmp_path / "p.jsonl", {"kind": "search_buy", "query": "camping", "product_ids": ["tent-1"]},
                        {"kind": "co_buy", "product_ids": [3, 4]}, {"kind": "co_buy", "product_ids": ["a"], "count": 0},
                        bom=True)
    r = runner.invoke(app, ["graph", "build", "--source", str(pairs)])
    assert r.exit_code == 0, r.output
    assert "2 pairs in, 1 with unknown products" in r.output  # the numeric ids 3, 4 are read (and unknown)
    assert "p.jsonl:3: count:" in text(r)


def test_no_pairs_names_the_option_that_exists(backends):
    r = runner.invoke(app, ["graph", "build"])  # the event log is empty
    assert r.exit_code == 1 and "--source FILE" in text(r) and "--pairs" not in r.output


def test_build_exits_non_zero_when_every_pair_failed(backends, tmp_path):
    backends[0] = ScriptedBackend("scripted", responder=lambda req: LLMError("refused (400)", fix="x"))
    pairs = write_pairs(tmp_path / "p.jsonl", {"kind": "search_buy", "query": "camping", "product_ids": ["tent-1"]})
    r = runner.invoke(app, ["graph", "build", "--source", str(pairs)])
    assert r.exit_code == 1 and "generation failed for all 1 pairs" in text(r) and "llm ping" in text(r)


def test_a_malformed_answer_from_an_openai_server_counts_the_pair_as_failed(backends, tmp_path):
    pairs = write_pairs(tmp_path / "p.jsonl", {"kind": "search_buy", "query": "camping", "product_ids": ["tent-1"]},
                        {"kind": "co_buy", "product_ids": ["tent-1", "bag-1"]})
    with StubServer() as server:
        server.reply(Reply(200, raw=b"not json at all"), Reply(200, {"choices": [{"index": 0}]}))
        config = RoleConfig(backend="openai", model="m", base_url=f"{server.url}/v1", max_retries=0)
        backends[0] = OpenAIBackend("m", config)
        r = runner.invoke(app, ["graph", "build", "--source", str(pairs)])
    assert r.exit_code == 1 and "2 failed" in text(r) and "unreadable answer" in text(r), r.output


def test_recommend_a_directory_is_an_input_error_and_no_intents_print_none(backends, tmp_path):
    r = runner.invoke(app, ["recommend", str(tmp_path)])
    assert r.exit_code == 1 and "is a directory" in text(r)
    session = tmp_path / "s.json"
    session.write_text("\ufeff" + json.dumps({"product_ids": ["cof-1"]}), encoding="utf-8")
    r = runner.invoke(app, ["recommend", str(session)])
    assert r.exit_code == 0 and "inferred intents: none" in r.output, r.output
