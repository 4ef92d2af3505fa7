"""The core commands through typer's runner, against a real SQLite file in a temporary home."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from shelfwise.cli.main import app

FIX = Path(__file__).parent.parent / "fixtures" / "listings.jsonl"
runner = CliRunner()


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("SHELFWISE_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_init_creates_and_reports_the_database(home):
    result = runner.invoke(app, ["init"])
    assert result.exit_code == 0, result.output
    assert (home / "shelfwise.db").exists() and "core_0001" in result.output


def test_ingest_reports_bad_rows_by_line_and_is_idempotent(home):
    first = runner.invoke(app, ["ingest", str(FIX)])
    assert first.exit_code == 0, first.output
    assert "3 added" in first.output and "2 rejected" in first.output
    assert "listings.jsonl:3" in first.output and "listings.jsonl:4" in first.output
    again = runner.invoke(app, ["ingest", str(FIX)])
    assert "0 added, 0 updated, 3 unchanged" in again.output


def test_ingest_of_only_bad_rows_fails(home, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{broken\n[1, 2]\n")
    result = runner.invoke(app, ["ingest", str(bad)])
    assert result.exit_code == 1 and "bad.jsonl:2" in result.output


def test_ingest_csv(home, tmp_path):
    csv_file = tmp_path / "listings.csv"
    csv_file.write_text('id,title,bullets,category_path\nc1,"Tent, 4 person",a | b,Camping\nc2,,x,Camping\n')
    result = runner.invoke(app, ["ingest", str(csv_file)])
    assert "1 added" in result.output and "listings.csv:3" in result.output and "title" in result.output


def test_config_show_masks_secrets(home, monkeypatch):
    monkeypatch.setenv("SHELFWISE_DATABASE_URL", "postgresql+psycopg://u:hunter2@db/shelf")
    monkeypatch.setenv("SHELFWISE_ROLES__SUPERVISOR__API_KEY", "sk-very-secret")
    result = runner.invoke(app, ["config", "show"])
    assert result.exit_code == 0, result.output
    assert "hunter2" not in result.output and "sk-very-secret" not in result.output
    data = json.loads(result.output)
    assert data["roles"]["supervisor"]["api_key"] == "****" and data["home"] == str(home)


def test_llm_ping_unknown_role_lists_the_valid_ones(home):
    result = runner.invoke(app, ["llm", "ping", "nonexistent"])
    assert result.exit_code == 1
    assert "unknown role 'nonexistent'" in result.output and "worker.generator" in result.output
