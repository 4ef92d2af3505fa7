import json

import pytest

from shelfwise.config import DEFAULT_ROLES, Settings, get_settings
from shelfwise.errors import ConfigError, UnknownNameError


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


def test_a_misspelt_role_in_the_toml_file_is_an_error_naming_the_closest_role(tmp_path, monkeypatch):
    cfg = tmp_path / "shelfwise.toml"
    cfg.write_text('[roles.supervisr]\nbackend = "openai"\n')
    monkeypatch.setenv("SHELFWISE_CONFIG", str(cfg))
    with pytest.raises(UnknownNameError) as err:
        get_settings()
    text = str(err.value)
    assert "'supervisr'" in text and "did you mean 'supervisor'" in text and "[roles.supervisor]" in text
    assert "worker.generator.alt" in text  # the known roles are listed


def test_a_dotted_role_spelt_with_an_underscore_in_the_environment_shows_the_env_spelling(monkeypatch):
    monkeypatch.setenv("SHELFWISE_ROLES__GRAPH_GENERATOR__BACKEND", "openai")
    with pytest.raises(UnknownNameError) as err:
        get_settings()
    text = str(err.value)
    assert "did you mean 'graph.generator'" in text and "SHELFWISE_ROLES__GRAPH.GENERATOR__<FIELD>" in text
    assert '[roles."graph.generator"]' in text


def test_an_unknown_role_asked_of_the_settings_names_the_known_ones():
    with pytest.raises(UnknownNameError, match="did you mean 'memory.manager'"):
        Settings().role("memory_manger")


def test_a_config_file_named_but_missing_is_an_error_not_the_defaults(monkeypatch, tmp_path):
    from shelfwise.config import get_settings
    from shelfwise.errors import ConfigError

    monkeypatch.setenv("SHELFWISE_CONFIG", str(tmp_path / "prod.toml"))
    with pytest.raises(ConfigError, match="prod.toml.*not a file") as err:
        get_settings()
    assert "SHELFWISE_CONFIG" in err.value.fix
