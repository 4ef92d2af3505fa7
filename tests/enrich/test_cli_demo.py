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


def test_cli_audited_rulings_feed_the_track_record(monkeypatch, scripted_sw):
    from typer.testing import CliRunner

    import shelfwise.cli.enrich as cli_enrich
    from shelfwise.cli.main import app
    from shelfwise.enrich import ReviewQueue

    monkeypatch.setattr(cli_enrich, "open_app", lambda migrate=True: scripted_sw)
    monkeypatch.setattr(scripted_sw, "close", lambda: None)
    runner = CliRunner()
    res = runner.invoke(app, ["review", "trust"])
    assert res.exit_code == 0 and "no resolved review items yet" in res.output
    res = runner.invoke(app, ["enrich", "--batch-size", "2", "--no-titles", "--audit-rulings", "1.0"])
    assert res.exit_code == 0, res.output
    with scripted_sw.db.session() as s:
        items = ReviewQueue(s).list("open")
    # The supervisor was confident (0.9); only the audit sent its rulings to a person.
    assert items and all(i.reason.startswith("audit sample") and i.proposed == "Brewhaus" for i in items)
    for item in items:
        res = runner.invoke(app, ["review", "resolve", str(item.id), "Brewhaus", "--no-learn"])
        assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["review", "trust", "--category", "Coffee"])
    assert res.exit_code == 0, res.output
    rows = {tuple(c.strip() for c in line.split("│")[1:6]) for line in res.output.splitlines() if "│" in line}
    n = str(len(items))
    assert ("Coffee", "Brand", "supervisor", n, n) in rows and ("Coffee", "Brand", "generator", n, "0") in rows
    assert "(all)" in res.output and "100%" not in res.output  # estimates are shrunk, never certain
