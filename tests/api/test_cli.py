"""The strato command: demo (fresh, --keep, --clean, the strato.toml it writes), a busy port,
`make demo`'s installs, the plugin loader's messages."""

from __future__ import annotations

import socket
from pathlib import Path

from click.testing import CliRunner

from api.cli import main

REPO = Path(__file__).resolve().parents[2]


def test_demo_builds_then_keep_reuses_it(tmp_path):
    runner = CliRunner()
    first = runner.invoke(main, ["--data-dir", str(tmp_path), "demo", "--no-serve"])
    assert first.exit_code == 0, first.output
    assert "demo-vm-1 (Running" in first.output and "CLOUDSTACK_KEY=" in first.output
    again = runner.invoke(main, ["--data-dir", str(tmp_path), "demo", "--no-serve", "--keep"])
    assert again.exit_code == 0, again.output
    assert "demo-vm-1 (Running" in again.output
    key = next(line for line in first.output.splitlines() if "listVirtualMachines" in line)
    assert key in again.output, "--keep keeps the same cloud and keys"


def test_a_busy_port_is_refused_before_anything_is_touched(tmp_path):
    marker = tmp_path / "strato.db"
    marker.write_text("the data of a demo that is still serving")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = CliRunner().invoke(main, ["--data-dir", str(tmp_path), "demo", "--port", str(port)])
    assert result.exit_code != 0 and "choose another with --port" in result.output
    assert marker.read_text() == "the data of a demo that is still serving"


def test_the_demo_writes_the_plugins_it_enabled_for_serve(tmp_path, monkeypatch):
    """`strato --data-dir <dir> serve` after a demo loads what the demo loaded: the config
    lookup reads <data dir>/strato.toml, which the demo writes."""
    from core import config

    for name in ("STRATO_CONFIG", "STRATO_HYPERVISORS", "STRATO_STORAGE", "STRATO_NETWORK", "STRATO_API"):
        monkeypatch.delenv(name, raising=False)
    done = CliRunner().invoke(main, ["--data-dir", str(tmp_path), "demo", "--no-serve", "--port", "8297"])
    assert done.exit_code == 0, done.output
    served = config.load({"data_dir": tmp_path})
    assert served.plugins == {"hypervisors": ["simulator"], "storage": ["simulator"], "network": [],
                              "api": ["simulator"]}
    assert served.api_port == 8297, "serve answers where the demo said it would"
    # a stale file from a KVM demo must not leak into the next plain demo
    (tmp_path / "strato.toml").write_text((tmp_path / "strato.toml").read_text().replace(
        'hypervisors = ["simulator"]', 'hypervisors = ["nosuch"]') + '\n[plugin.kvm]\ndomain_type = "qemu"\n')
    again = CliRunner().invoke(main, ["--data-dir", str(tmp_path), "demo", "--no-serve"])
    assert again.exit_code == 0, again.output
    reloaded = config.load({"data_dir": tmp_path})
    assert reloaded.plugins["hypervisors"] == ["simulator"] and reloaded.api_port == 8080
    assert reloaded.plugin_config == {"kvm": {"domain_type": "qemu"}}, "a plugin section the user set stays"


def test_the_demo_leaves_a_strato_toml_of_its_users_alone(tmp_path):
    mine = tmp_path / "strato.toml"
    mine.write_text('[plugins]\nhypervisors = ["simulator"]\n')
    done = CliRunner().invoke(main, ["--data-dir", str(tmp_path), "demo", "--no-serve"])
    assert done.exit_code != 0 and "not written by strato demo" in done.output
    assert mine.read_text() == '[plugins]\nhypervisors = ["simulator"]\n'


def test_demo_clean_removes_the_demo_data(tmp_path):
    assert CliRunner().invoke(main, ["--data-dir", str(tmp_path), "demo", "--no-serve"]).exit_code == 0
    done = CliRunner().invoke(main, ["--data-dir", str(tmp_path), "demo", "--clean"])
    assert done.exit_code == 0, done.output
    assert not (tmp_path / "strato.db").exists() and not (tmp_path / "strato.toml").exists()


def test_a_kvm_demos_instance_name_is_its_data_dirs_own(tmp_path):
    import re

    from api.demo import instance_name_for

    one, other = instance_name_for(tmp_path / "a"), instance_name_for(tmp_path / "b")
    assert one != other and one == instance_name_for(tmp_path / "a")
    assert all(re.fullmatch(r"[A-Za-z0-9]{1,32}", name) for name in (one, other)), "instance.name's pattern"


def _make_demo(venv: Path, args: str) -> str:
    """The commands `make demo ARGS=...` would run for a venv that is not there yet."""
    import shutil
    import subprocess

    if shutil.which("make") is None:
        import pytest

        pytest.skip("make is not installed")
    done = subprocess.run(["make", "-n", "-B", "demo", f"ARGS={args}", f"VENV={venv}"], cwd=REPO,
                          capture_output=True, text=True, check=True)
    return done.stdout


def test_make_demo_installs_what_the_kvm_and_network_demos_need_only_when_asked(tmp_path):
    plain = _make_demo(tmp_path / "venv", "")
    assert "[kvm]" not in plain and "install-system.sh kvm" not in plain and "install-system.sh network" not in plain
    kvm = _make_demo(tmp_path / "venv", "--hypervisor kvm --no-serve")
    assert "install-system.sh kvm storage" in kvm and "pip install -q -e '.[kvm]'" in kvm
    assert "strato demo --hypervisor kvm --no-serve" in kvm
    network = _make_demo(tmp_path / "venv", "--network vr")
    assert "install-system.sh network" in network and "[kvm]" not in network


def _broken_entry_point(monkeypatch):
    import importlib.metadata as md

    from stevedore.extension import ExtensionManager

    # installed, but its module does not import (as kvm without libvirt-python)
    broken = md.EntryPoint("broken", "strato_no_such_module:Driver", "strato.hypervisors")
    listed = ExtensionManager.list_entry_points
    monkeypatch.setattr(ExtensionManager, "list_entry_points",
                        lambda self: [*listed(self), broken] if self.namespace == "strato.hypervisors"
                        else listed(self))


def test_a_plugin_that_fails_to_import_is_not_called_missing(tmp_path, monkeypatch):
    _broken_entry_point(monkeypatch)
    monkeypatch.setenv("STRATO_HYPERVISORS", "broken")
    done = CliRunner().invoke(main, ["--data-dir", str(tmp_path), "plugins"])
    message = " ".join(done.output.split())
    assert "hypervisors plugin 'broken' failed to load" in message and "strato_no_such_module" in message
    assert "not installed" not in message, "its entry point is installed: it failed to import"


def test_plugins_the_allow_list_keeps_out_are_named_at_start_up(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("STRATO_API", "simulator,hello")
    monkeypatch.setenv("STRATO_PLUGINS", "simulator")
    with caplog.at_level("WARNING", logger="core.plugins"):
        done = CliRunner().invoke(main, ["--data-dir", str(tmp_path), "plugins"])
    assert done.exit_code == 0, done.output
    warned = [r.getMessage() for r in caplog.records if r.name == "core.plugins"]
    assert any("api plugin(s) hello" in m and "STRATO_PLUGINS allows only simulator" in m for m in warned), warned
