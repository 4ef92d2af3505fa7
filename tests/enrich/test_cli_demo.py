"""CLI commands and the demo on ScriptedBackend doubles."""

from __future__ import annotations

from rich.console import Console

from shelfwise.enrich.demo import run_demo


def test_demo_shows_two_batches_learnings_and_chart(scripted_sw):
    console = Console(record=True, width=160)
    run_demo(scripted_sw, console)
    text = console.export_text()
    assert "batch 1" in text and "batch 2" in text and "learnings written" in text
    assert (scripted_sw.settings.home / "enrich_health.png").exists()


def test_cli_enrich_report_review(monkeypatch, scripted_sw, tmp_path):
    from typer.testing import CliRunner

    import shelfwise.cli._common as common
    import shelfwise.cli.enrich as cli_enrich
    from shelfwise.cli.main import app

    monkeypatch.setattr(cli_enrich, "open_app", lambda migrate=True: scripted_sw)
    monkeypatch.setattr(scripted_sw, "close", lambda: None)
    runner = CliRunner()
    res = runner.invoke(app, ["enrich", "--batch-size", "2", "--batches", "2", "--no-titles"])
    assert res.exit_code == 0, res.output
    assert "enrichment batches" in res.output
    chart = tmp_path / "c.png"
    res = runner.invoke(app, ["report", "--chart", str(chart)])
    assert res.exit_code == 0, res.output
    assert "per attribute" in res.output and chart.exists()
    res = runner.invoke(app, ["review", "list"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["review", "resolve", "999", "x"])
    assert res.exit_code == 1 and "no review item" in res.output
    assert common  # the shared plumbing is what prints the error with its fix
