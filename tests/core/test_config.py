"""Settings: strato.toml, STRATO_* variables, and what happens with mistakes in them."""

from __future__ import annotations

import logging

import pytest

from core import config
from core.errors import ConfigurationError


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    for name in ("STRATO_CONFIG", "STRATO_DATABASE_URL", "STRATO_BROKER", "STRATO_QUEUE", "STRATO_PLUGINS",
                 "STRATO_HYPERVISORS", "STRATO_STORAGE", "STRATO_NETWORK", "STRATO_API", "STRATO_TRACE_PLUGINS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("STRATO_DATA_DIR", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_defaults_are_the_embedded_cloud(clean_env):
    settings = config.load()
    assert settings.database_url == f"sqlite:///{clean_env / 'strato.db'}"
    assert settings.broker == "embedded" and settings.plugins["hypervisors"] == ["simulator"]


def test_file_then_environment(clean_env, monkeypatch):
    (clean_env / "strato.toml").write_text('[server]\nport = 9090\n[plugins]\nhypervisors = ["kvm"]\n'
                                           '[jobs]\nbroker = "redis://x"\n[plugin.kvm]\ndomain_type = "qemu"\n')
    monkeypatch.setenv("STRATO_BROKER", "redis://y")
    monkeypatch.setenv("STRATO_STORAGE", "nfs, simulator")
    settings = config.load()
    assert settings.api_port == 9090 and settings.plugins["hypervisors"] == ["kvm"]
    assert settings.broker == "redis://y" and settings.plugins["storage"] == ["nfs", "simulator"]
    assert settings.for_plugin("kvm") == {"domain_type": "qemu"}


def test_a_misspelt_key_is_named(clean_env, caplog):
    (clean_env / "strato.toml").write_text("[server]\nprot = 9\n")
    with caplog.at_level(logging.WARNING):
        config.load()
    assert "unknown setting [server] prot" in caplog.text


def test_broken_toml_and_missing_config_file_stop_start_up(clean_env, monkeypatch):
    (clean_env / "strato.toml").write_text("[server\n")
    with pytest.raises(ConfigurationError, match="strato.toml"):
        config.load()
    monkeypatch.setenv("STRATO_CONFIG", str(clean_env / "nope.toml"))
    with pytest.raises(ConfigurationError, match="does not exist"):
        config.load()
