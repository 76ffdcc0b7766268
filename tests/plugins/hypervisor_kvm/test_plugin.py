"""The plugin as the core loads it: the entry point, registration, capabilities."""

from __future__ import annotations

import re
from importlib.metadata import EntryPoint, entry_points

import pytest

from core.config import Settings
from core.drivers import HypervisorDriver

pytest.importorskip("libvirt", reason="libvirt-python is not installed (pip install 'strato[kvm]')")

from plugins.hypervisor_kvm.driver import LibvirtDriver  # noqa: E402

from .helpers import REPO  # noqa: E402


def test_setup_py_entry_point_loads_the_driver():
    line = re.search(r'"kvm = ([\w.:]+)"', (REPO / "setup.py").read_text())
    assert line, "setup.py declares no kvm hypervisor entry point"
    loaded = EntryPoint(name="kvm", value=line.group(1), group="strato.hypervisors").load()
    assert loaded is LibvirtDriver and issubclass(loaded, HypervisorDriver)


def test_installed_entry_point_when_installed():
    installed = [ep for ep in entry_points(group="strato.hypervisors") if ep.name == "kvm"]
    if not installed:
        pytest.skip("strato is not installed in this environment (pip install -e .): no entry points to check")
    assert installed[0].load() is LibvirtDriver


def test_the_core_registers_it_and_finds_it_by_hypervisor_type(tmp_path):
    from core.plugins import PluginManager

    manager = PluginManager(Settings(data_dir=tmp_path, database_url=f"sqlite:///{tmp_path}/db"))
    driver = LibvirtDriver({"console_log_dir": str(tmp_path)})
    manager.add_driver("hypervisors", "kvm", driver)
    manager.pm.check_pending()
    assert manager.hypervisor("kvm") is driver and manager.hypervisor("KVM") is driver
    manager.close()


def test_capabilities_and_identity():
    assert LibvirtDriver.name == "kvm" and LibvirtDriver.hypervisor_type == "KVM"
    assert {"qemu", "qemu+ssh", "qemu+tcp", "http", "test"} <= set(LibvirtDriver.url_schemes)
    assert LibvirtDriver.capabilities == {"live_migration": True, "volume_hotplug": True, "vm_snapshots": True,
                                          "stats": True}
