"""Settings sources (env, ember.toml) and the registry's rules."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from ember import registry
from ember.config import Settings


def test_roles_from_env_json_keep_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMBER_ROLES", json.dumps({"chat": {"engine": "openai", "model": "m", "url": "http://x/v1"}}))
    monkeypatch.setenv("EMBER_PORT", "9001")
    settings = Settings()
    assert settings.port == 9001
    assert settings.roles["chat"].engine == "openai" and settings.roles["chat"].url == "http://x/v1"
    assert settings.roles["chat-fast"].model == "chat-fast"  # default role still there


def test_toml_file_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "ember.toml"
    config.write_text(
        'port = 8123\n[roles.chat-fast]\nengine = "llama_cpp"\nmodel = "/models/mine.gguf"\nparallel = 2\n'
    )
    monkeypatch.setenv("EMBER_CONFIG", str(config))
    settings = Settings()
    assert settings.port == 8123
    assert settings.roles["chat-fast"].model == "/models/mine.gguf" and settings.roles["chat-fast"].parallel == 2


def test_env_beats_toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "ember.toml"
    config.write_text("port = 8123\n")
    monkeypatch.setenv("EMBER_CONFIG", str(config))
    monkeypatch.setenv("EMBER_PORT", "8124")
    assert Settings().port == 8124


@pytest.mark.parametrize("bad", [{"port": 70000}, {"roles": {"chat": {"engine": "fake"}}}, {"colour": "red"}])
def test_invalid_settings_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        Settings(**bad)  # type: ignore[arg-type]


def test_registry_refuses_a_second_entry_under_one_name() -> None:
    reg: registry.Registry[int] = registry.Registry("thing")
    reg.add("a", 1)
    with pytest.raises(ValueError, match="already registered"):
        reg.add("a", 2)
    assert reg.get("a") == 1 and reg.get("b") is None and reg.names() == ["a"]


def test_builtins_register_like_plugins() -> None:
    registry.load_plugins()
    assert {"llama_cpp", "openai", "fake"} <= set(registry.engines.names())
    assert "ember-instant" in registry.modes
