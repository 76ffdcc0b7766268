"""Settings: ``strato.toml`` overlaid by ``STRATO_*`` environment variables.

Looked up in order: the file named by ``STRATO_CONFIG``, ``./strato.toml``,
``<data dir>/strato.toml``. Environment variables win over the file:
``STRATO_DATABASE_URL``, ``STRATO_BROKER``, ``STRATO_DATA_DIR``,
``STRATO_QUEUE``, ``STRATO_PLUGINS`` (allow-list, comma-separated names of any kind),
``STRATO_HYPERVISORS`` / ``STRATO_STORAGE`` / ``STRATO_NETWORK`` / ``STRATO_API``
(comma-separated enabled plugins of that kind, in order).
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from pathlib import Path
from typing import Any

from .errors import ConfigurationError

PLUGIN_KINDS = ("hypervisors", "storage", "network", "api")

DEFAULT_PLUGINS = {
    "hypervisors": ["simulator"],
    "storage": ["simulator"],
    "network": [],
    "api": ["simulator"],
}


@dataclasses.dataclass
class Settings:
    data_dir: Path
    database_url: str
    #: "embedded" runs jobs in-process; a redis:// or amqp:// URL sends them to workers
    broker: str = "embedded"
    #: in-process worker threads (embedded broker only)
    worker_threads: int = 4
    #: the broker queue (and Redis namespace) this cloud's jobs travel on
    queue: str = "strato"
    plugins: dict[str, list[str]] = dataclasses.field(default_factory=lambda: dict(DEFAULT_PLUGINS))
    #: None: every configured plugin may load; otherwise only these names
    plugin_allow_list: set[str] | None = None
    #: per-plugin sections, e.g. [plugin.kvm]
    plugin_config: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    api_host: str = "127.0.0.1"
    api_port: int = 8080
    session_timeout_minutes: int = 30
    trace_plugins: bool = False

    def for_plugin(self, name: str) -> dict[str, Any]:
        return self.plugin_config.get(name, {})


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def config_file(data_dir: Path) -> Path | None:
    """The settings file ``load`` reads for ``data_dir`` (None: there is none)."""
    return _find_file(Path(data_dir))


def _find_file(data_dir: Path) -> Path | None:
    named = os.environ.get("STRATO_CONFIG")
    if named:
        path = Path(named)
        if not path.is_file():
            raise ConfigurationError(f"STRATO_CONFIG names {path}, which does not exist")
        return path
    for candidate in (Path("strato.toml"), data_dir / "strato.toml"):
        if candidate.is_file():
            return candidate
    return None


#: the keys strato.toml may hold, per section ("" is the top level); [plugin.<name>] is free-form
KNOWN_KEYS = {"": {"data_dir", "database", "jobs", "server", "plugins", "plugin"}, "database": {"url"},
              "jobs": {"broker", "worker_threads"}, "server": {"host", "port", "session_timeout_minutes"},
              "plugins": set(PLUGIN_KINDS)}


def _warn_unknown(path: Path | None, raw: dict) -> None:
    """A misspelt key would silently change nothing: name it."""
    import logging

    for section, known in KNOWN_KEYS.items():
        table = raw if section == "" else raw.get(section, {})
        if not isinstance(table, dict):
            raise ConfigurationError(f"{path}: [{section}] must be a table")
        for key in set(table) - known:
            where = f"[{section}] " if section else ""
            logging.getLogger(__name__).warning("%s: unknown setting %s%s (known: %s)", path, where, key,
                                                ", ".join(sorted(known)))


def load(overrides: dict[str, Any] | None = None) -> Settings:
    """Read the settings. ``overrides`` (from the CLI or tests) win over everything."""
    env = os.environ
    data_dir = Path(env.get("STRATO_DATA_DIR") or (overrides or {}).get("data_dir") or Path.home() / ".strato")
    path = _find_file(data_dir)
    try:
        raw = tomllib.loads(path.read_text()) if path else {}
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"{path}: {exc}") from exc

    _warn_unknown(path, raw)
    server = raw.get("server", {})
    plugins = dict(DEFAULT_PLUGINS)
    for kind in PLUGIN_KINDS:
        if kind in raw.get("plugins", {}):
            plugins[kind] = list(raw["plugins"][kind])
        if f"STRATO_{kind.upper()}" in env:
            plugins[kind] = _split(env[f"STRATO_{kind.upper()}"])

    data_dir = Path(raw.get("data_dir", data_dir))
    settings = Settings(
        data_dir=data_dir,
        database_url=raw.get("database", {}).get("url") or f"sqlite:///{data_dir / 'strato.db'}",
        broker=raw.get("jobs", {}).get("broker", "embedded"),
        worker_threads=int(raw.get("jobs", {}).get("worker_threads", 4)),
        plugins=plugins,
        plugin_config=raw.get("plugin", {}),
        api_host=server.get("host", "127.0.0.1"),
        api_port=int(server.get("port", 8080)),
        session_timeout_minutes=int(server.get("session_timeout_minutes", 30)),
    )
    if "STRATO_DATABASE_URL" in env:
        settings.database_url = env["STRATO_DATABASE_URL"]
    if "STRATO_BROKER" in env:
        settings.broker = env["STRATO_BROKER"]
    if "STRATO_QUEUE" in env:
        settings.queue = env["STRATO_QUEUE"]
    if "STRATO_PLUGINS" in env:
        settings.plugin_allow_list = set(_split(env["STRATO_PLUGINS"]))
    settings.trace_plugins = env.get("STRATO_TRACE_PLUGINS") == "1"
    for key, value in (overrides or {}).items():
        setattr(settings, key, Path(value) if key == "data_dir" else value)
    return settings
