"""NfsStorage as the core loads it: a storage plugin with both contracts and a hook."""

from __future__ import annotations

from importlib import import_module
from pathlib import Path

from core.config import Settings
from core.plugins import CONTRACTS, PluginManager


def test_the_entry_point_names_a_class_with_both_contracts():
    setup = (Path(__file__).parents[3] / "setup.py").read_text()
    assert '"nfs = plugins.storage_nfs.driver:NfsStorage"' in setup
    module, _, attribute = "plugins.storage_nfs.driver:NfsStorage".partition(":")
    target = getattr(import_module(module), attribute)
    assert issubclass(target, CONTRACTS["storage"])


def test_registered_driver_learns_the_data_dir(tmp_path):
    from plugins.storage_nfs.driver import NfsStorage

    settings = Settings(data_dir=tmp_path, database_url=f"sqlite:///{tmp_path}/db.sqlite")
    manager = PluginManager(settings)
    driver = NfsStorage({})
    manager.add_driver("storage", "nfs", driver)
    manager.pm.check_pending()
    manager.pm.hook.strato_configure.call_historic(kwargs={"settings": settings})
    assert driver.mount_root == str(tmp_path / "mnt")
    assert NfsStorage({"mount_root": "/elsewhere"}).mount_root == "/elsewhere"
    manager.close()
