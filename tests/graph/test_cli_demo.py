"""The graph CLI through typer's runner, the demo step (scripted model), and the real embedded model."""

from __future__ import annotations

import json

import pytest
from rich.console import Console
from typer.testing import CliRunner

import shelfwise.cli.graph as graph_cli
from shelfwise.app import Shelfwise
from shelfwise.cli.main import app
from shelfwise.config import Settings
from shelfwise.graph import BehaviourPair, GraphStore, catalog_products
from shelfwise.graph.generate import Generation, build_prompt
from shelfwise.graph.relations import SEED_RELATIONS
from shelfwise.llm.backends.scripted import ScriptedBackend
from shelfwise.store import Catalog, read_listings

runner = CliRunner()


@pytest.fixture
def cli_app(tmp_path, monkeypatch, gsw):
    """The CLI's commands get an app on the test database with a scripted graph.generator."""
    def opener(migrate=True):
        sw = Shelfwise.open(gsw.settings)
        sw.llms.set_backend("graph.generator", ScriptedBackend("scripted", responder=lambda req: json.dumps(
            {"candidates": [{"n": 1, "relation": "used_for_event", "tail": "backyard campout"},
                            {"n": 2, "relation": "usedFor", "tail": "the"}]})))
        return sw
    monkeypatch.setattr(graph_cli, "open_app", opener)
    return gsw


def test_build_show_stats_navigate_recommend(cli_app, tmp_path):
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps({"kind": "search_buy", "query": "camping", "product_ids": ["tent-1"]}) + "\n"
                     + json.dumps({"kind": "co_buy", "product_ids": ["tent-1", "ghost"]}) + "\n{bad\n")
    result = runner.invoke(app, ["graph", "build", "--source", str(pairs)])
    assert result.exit_code == 0, result.output
    assert "1 with unknown products" in result.output and "pairs.jsonl:3" in result.output
    assert "incomplete phrase: 1" in result.output and "1 edges added" in result.output
    shown = runner.invoke(app, ["graph", "show"])
    assert "backyard" in shown.output
    assert "backyard" in runner.invoke(app, ["graph", "show", "--product", "tent-1"]).output
    stats = runner.invoke(app, ["graph", "stats"])
    assert stats.exit_code == 0 and '"edges": 1' in stats.output
    nav = runner.invoke(app, ["navigate", "backyard campout"])
    assert nav.exit_code == 0 and "camping tent" in nav.output
    session = tmp_path / "session.json"
    session.write_text(json.dumps({"queries": ["backyard campout"], "product_ids": ["tent-1"]}))
    rec = runner.invoke(app, ["recommend", str(session)])
    assert rec.exit_code == 0 and "backyard" in rec.output


def test_cli_errors_say_how_to_fix(cli_app, tmp_path):
    r = runner.invoke(app, ["graph", "train"])
    assert r.exit_code == 1 and "shelfwise graph annotate" in r.output
    r = runner.invoke(app, ["graph", "build", "--source", str(tmp_path / "nope.jsonl")])
    assert r.exit_code == 1 and "fix:" in r.output
    r = runner.invoke(app, ["graph", "relations", "--accept", "flying"])
    assert r.exit_code == 1 and "no relation proposal" in r.output
    r = runner.invoke(app, ["recommend", str(tmp_path / "missing.json")])
    assert r.exit_code == 1


def test_demo_step_runs_on_the_demo_catalog(tmp_path):
    from shelfwise.demo import demo_catalog_path

    sw = Shelfwise.open(Settings(home=tmp_path / "demo", embedder={"backend": "hashing"}, search_embedder={"backend": "hashing"}))
    tails = iter(["winter camping trip", "keeping feet warm", "filming adventures", "long hospital shifts",
                  "sleeping outdoors", "snowy hikes", "protecting the camera", "backyard campout", "ice fishing"] * 3)
    sw.llms.set_backend("graph.generator", ScriptedBackend("scripted", responder=lambda req: json.dumps(
        {"candidates": [{"n": 1, "relation": "used_for_event", "tail": next(tails)}]})))
    with sw.db.session() as s:
        Catalog(s).ingest(read_listings(demo_catalog_path()))
    from shelfwise.graph.demo import run_demo

    console = Console(record=True, width=140)
    run_demo(sw, console)
    run_demo(sw, console)  # rerunning adds no events and asks the model nothing new
    text = console.export_text()
    assert "refinement cascade" in text and "winter camping trip" in text and "camping" in text
    with sw.db.session() as s:
        assert GraphStore(s).stats()["edges"] >= 1
    assert sw.providers.intents is not None
    sw.close()


@pytest.mark.slow
def test_real_embedded_model_generates_candidates(tmp_path):
    """The real graph.generator (qwen2.5-coder-0.5b via llama.cpp) answers the generation prompt with
    structured, relation-tied candidates."""
    sw = Shelfwise.open(Settings(home=tmp_path / "real", embedder={"backend": "hashing"}, search_embedder={"backend": "hashing"},
                                 llm_threads=1, roles={"graph.generator": {"timeout_s": 600}}))
    with sw.db.session() as s:
        Catalog(s).ingest(read_listings(__import__("shelfwise.demo", fromlist=["x"]).demo_catalog_path()))
        products = catalog_products(s)
    pair = BehaviourPair(kind="search_buy", query="winter camping", product_ids=("cmp-003",))
    value, comp = sw.llm("graph.generator").structured(build_prompt(pair, products, SEED_RELATIONS, k=2),
                                                       Generation, prompt_id="test.graph.real", use_cache=False)
    assert value.candidates and all(len(c.tail) <= 80 for c in value.candidates)
    assert comp.output_tokens > 0 and comp.model
    sw.close()
