"""Plugin discovery, registration and the hook specifications themselves."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
from click.testing import CliRunner

from core import hookimpl, hookspecs
from core.config import Settings
from core.errors import ConfigurationError
from core.plugins import PluginManager

TESTS = Path(__file__).resolve().parents[1]


def settings(tmp_path, **plugins):
    base = Settings(data_dir=tmp_path, database_url=f"sqlite:///{tmp_path}/x.db")
    base.plugins = {**base.plugins, **plugins}
    return base


def hook_names():
    return [name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("strato_")]


@pytest.mark.parametrize("name", hook_names())
def test_every_hook_is_documented(name):
    doc = inspect.getdoc(getattr(hookspecs, name)) or ""
    assert len(doc) > 80, f"hook {name} needs a docstring saying when it fires, in or out of the transaction, " \
                          "what it returns and whether it is firstresult"
    assert "transaction" in doc, f"hook {name}'s docstring must say whether it runs inside the transaction"


@pytest.mark.parametrize("name", hook_names())
def test_every_hook_is_tested(name):
    users = [p for p in TESTS.rglob("test_*.py") if name in p.read_text()]
    assert users, f"no test exercises hook {name}: add one under tests/"


def test_default_plugins_load_and_describe_themselves(tmp_path):
    manager = PluginManager(settings(tmp_path)).load()
    assert manager.hypervisor("simulator").hypervisor_type == "Simulator"
    rows = {(r["kind"], r["name"]): r for r in manager.describe()}
    assert rows[("hypervisors", "simulator")]["enabled"] is True
    assert rows[("hypervisors", "simulator")]["capabilities"]["live_migration"] is True
    assert rows[("hypervisors", "kvm")]["enabled"] is False, "installed but not enabled"


def test_a_configured_plugin_that_is_not_installed_stops_start_up(tmp_path):
    with pytest.raises(ConfigurationError, match=r"hypervisors plugin\(s\) nosuch .*not installed"):
        PluginManager(settings(tmp_path, hypervisors=["simulator", "nosuch"])).load()


def test_a_plugin_that_fails_to_load_stops_start_up(tmp_path, monkeypatch):
    import importlib.metadata as md

    from stevedore.extension import ExtensionManager

    # an installed entry point whose module is not there, as a half-removed plugin leaves behind
    broken = md.EntryPoint("broken", "strato_no_such_module:Driver", "strato.hypervisors")
    listed = ExtensionManager.list_entry_points
    monkeypatch.setattr(ExtensionManager, "list_entry_points",
                        lambda self: [*listed(self), broken] if self.namespace == "strato.hypervisors"
                        else listed(self))
    with pytest.raises(ConfigurationError, match="hypervisors plugin 'broken' failed to load.*strato_no_such"):
        PluginManager(settings(tmp_path, hypervisors=["broken"])).load()


def test_allow_list_keeps_other_plugins_out(tmp_path):
    s = settings(tmp_path, api=["simulator", "hello"])
    s.plugin_allow_list = {"simulator"}
    manager = PluginManager(s).load()
    names = [name for name, _ in manager.pm.list_name_plugin()]
    assert "api:simulator" in names and "api:hello" not in names


def test_third_party_plugin_is_found_by_its_entry_point(tmp_path):
    """tests/thirdparty_plugin is its own distribution (strato-hello), installed by pip."""
    manager = PluginManager(settings(tmp_path, api=["simulator", "hello"])).load()
    commands = {c.name for c in manager.api_commands()}
    assert {"sayHello", "configureSimulator"} <= commands
    assert [k.name for k in manager.configuration_keys()] == ["hello.greeting"]


def test_implementations_of_unknown_hooks_are_rejected(tmp_path):
    manager = PluginManager(settings(tmp_path)).load()

    class Typo:
        @hookimpl
        def strato_vm_state_changd(self, vm_uuid):
            pass

    from pluggy import PluginValidationError

    with pytest.raises(PluginValidationError):
        manager.register(Typo(), "typo")


def test_configure_is_historic(tmp_path):
    manager = PluginManager(settings(tmp_path)).load()
    seen = []

    class Late:
        @hookimpl
        def strato_configure(self, settings):
            seen.append(settings)

    manager.register(Late(), "late")
    assert seen == [manager.settings], "a plugin registered after start-up still gets strato_configure"


def test_a_failing_notification_hook_does_not_break_the_caller(tmp_path, caplog):
    manager = PluginManager(settings(tmp_path)).load()

    class Broken:
        @hookimpl
        def strato_event_recorded(self, event):
            raise RuntimeError("boom")

    manager.register(Broken(), "broken")
    manager.event_recorded({"type": "X"})
    assert "strato_event_recorded failed" in caplog.text


def test_trace_switch_prints_hook_calls(tmp_path, capsys):
    s = settings(tmp_path)
    s.trace_plugins = True
    manager = PluginManager(s).load()
    manager.job_completed("j", "listZones", 1, {})
    assert "strato_job_completed" in capsys.readouterr().err


def test_strato_plugins_command_lists_plugins(tmp_path, monkeypatch):
    from api.cli import main

    monkeypatch.setenv("STRATO_DATA_DIR", str(tmp_path))
    result = CliRunner().invoke(main, ["plugins"])
    assert result.exit_code == 0, result.output
    assert "simulator" in result.output and "kvm" in result.output and "live_migration" in result.output
