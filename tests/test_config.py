import json

import pytest

from shelfwise.config import DEFAULT_ROLES, Settings, get_settings
from shelfwise.errors import ConfigError


def test_toml_env_and_defaults_merge(tmp_path, monkeypatch):
    cfg = tmp_path / "shelfwise.toml"
    cfg.write_text('database_url = "sqlite:///x.db"\n[roles.supervisor]\nmodel = "big"\nbackend = "openai"\n'
                   'base_url = "http://127.0.0.1:8080/v1"\napi_key = "sk-secret"\n')
    monkeypatch.setenv("SHELFWISE_CONFIG", str(cfg))
    monkeypatch.setenv("SHELFWISE_ROLES__WORKER.GENERATOR__MAX_TOKENS", "99")
    s = get_settings()
    assert s.roles["supervisor"].model == "big" and s.roles["supervisor"].backend == "openai"
    assert s.roles["worker.evaluator"] == DEFAULT_ROLES["worker.evaluator"]  # defaults kept for other roles
    assert s.effective_database_url == "sqlite:///x.db"
    masked = json.dumps(s.masked())
    assert "sk-secret" not in masked and "****" in masked


def test_env_overrides_toml(tmp_path, monkeypatch):
    cfg = tmp_path / "shelfwise.toml"
    cfg.write_text('home = "/from/toml"\n')
    monkeypatch.setenv("SHELFWISE_CONFIG", str(cfg))
    monkeypatch.setenv("SHELFWISE_HOME", "/from/env")
    assert str(get_settings().home) == "/from/env"


def test_password_in_database_url_is_masked():
    s = Settings(database_url="postgresql+psycopg://u:hunter2@h/db")
    assert "hunter2" not in json.dumps(s.masked())


def test_bad_settings_name_the_fix(tmp_path, monkeypatch):
    cfg = tmp_path / "shelfwise.toml"
    cfg.write_text("llm_threads = 0\n")
    monkeypatch.setenv("SHELFWISE_CONFIG", str(cfg))
    with pytest.raises(ConfigError, match="fix: check"):
        get_settings()
