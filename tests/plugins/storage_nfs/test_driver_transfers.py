"""The NfsStorage methods the volume, snapshot and template commands call: backups with
their sizes, volumes from backups, copies between pools and between stores, templates
from volumes and snapshots, template downloads, the pool's template copies. Once per
backend (``backend`` in conftest.py), failures included: no partial file may stay."""

from __future__ import annotations

import dataclasses
import uuid

import pytest

from core.drivers import SnapshotBackup, TemplateRef
from core.errors import InvalidParameterError, StratoError

from .helpers import image_info, leftovers, qemu_io
from .test_driver import connect, on_store, pool, registered, store, template_ref, volume_spec  # noqa: F401 (fixtures)

MiB = 1024 * 1024


@pytest.fixture
def root(driver, pool, registered):
    """A root volume (an overlay on the pool's copy of the template) with 0x11 at 1 MiB."""
    pool_ref, _ = pool
    volume = volume_spec(pool_ref, 0, "ROOT")
    volume.path = driver.create_volume(pool_ref, volume, registered)
    qemu_io(volume.path, "write -P 0x11 1M 64k")
    return volume


def test_backup_volume_reports_where_and_how_big(driver, pool, store, root):
    store_ref, store_dir = store
    snapshot_uuid = str(uuid.uuid4())
    backup = driver.backup_volume(pool[0], root, store_ref, snapshot_uuid, account=7, running=True)
    assert isinstance(backup, SnapshotBackup)
    assert backup.path == f"snapshots/7/{root.uuid}/{snapshot_uuid}.qcow2"
    on_disk = store_dir / backup.path
    assert backup.physical_size_bytes == on_disk.stat().st_size and backup.virtual_size_bytes == 32 * MiB
    info = image_info(str(on_disk))
    assert "backing-filename" not in info
    qemu_io(str(on_disk), "read -P 0x11 1M 64k")
    qemu_io(str(on_disk), "read -P 0xab 0 64k")


def test_a_new_volume_is_made_from_a_backup(driver, pool, store, root):
    pool_ref, pool_dir = pool
    backup = driver.backup_volume(pool_ref, root, store[0], str(uuid.uuid4()))
    fresh = volume_spec(pool_ref, 32 * MiB)
    path = driver.restore_snapshot(pool_ref, fresh, store[0], backup.path)
    assert path.endswith(f"{fresh.uuid}.qcow2")
    qemu_io(path, "read -P 0x11 1M 64k")
    assert "backing-filename" not in image_info(path) and leftovers(pool_dir) == []
    with pytest.raises(StratoError):
        driver.restore_snapshot(pool_ref, volume_spec(pool_ref, MiB), store[0], backup.path + ".gone")
    assert leftovers(pool_dir) == []


def test_copy_volume_to_another_pool(driver, backend, pool, root):
    pool_ref, pool_dir = pool
    url, other_dir = backend.new("pool2")
    other = connect(driver, url)
    path = driver.copy_volume(pool_ref, root, other)
    assert path.endswith(f"{root.uuid}.qcow2") and (other_dir / f"{root.uuid}.qcow2").is_file()
    qemu_io(path, "read -P 0x11 1M 64k")
    qemu_io(path, "read -P 0xab 0 64k")
    assert "backing-filename" not in image_info(path), "standalone: the other pool has no copy of the template"
    assert (pool_dir / f"{root.uuid}.qcow2").is_file(), "the source stays for the core to delete"
    with pytest.raises(InvalidParameterError, match="already on pool"):
        driver.copy_volume(pool_ref, root, pool_ref)
    missing = volume_spec(pool_ref, MiB)
    with pytest.raises(StratoError):
        driver.copy_volume(pool_ref, missing, other)
    assert leftovers(other_dir) == [] and not (other_dir / f"{missing.uuid}.qcow2").exists()


def test_templates_from_a_volume_and_from_a_backup(driver, pool, store, root):
    pool_ref, _ = pool
    store_ref, store_dir = store
    first = driver.template_from_volume(pool_ref, root, store_ref, template_ref("", "QCOW2"))
    assert first.install_path == f"template/tmpl/0/{first.uuid}/{first.uuid}.qcow2"
    assert first.size_bytes == 32 * MiB and first.format == "QCOW2"
    qemu_io(str(store_dir / first.install_path), "read -P 0x11 1M 64k")
    backup = driver.backup_volume(pool_ref, root, store_ref, str(uuid.uuid4()))
    second = driver.template_from_snapshot(store_ref, backup.path, template_ref("", "QCOW2"))
    qemu_io(str(store_dir / second.install_path), "read -P 0x11 1M 64k")
    failed = template_ref("", "QCOW2")
    with pytest.raises(StratoError):
        driver.template_from_snapshot(store_ref, backup.path + ".gone", failed)
    assert not (store_dir / "template" / "tmpl" / "0" / failed.uuid).exists() and leftovers(store_dir) == []
    with pytest.raises(InvalidParameterError):
        driver.template_from_snapshot(store_ref, "template/tmpl/0/x/x.qcow2", failed)


def test_copy_template_between_stores_byte_for_byte(driver, backend, store, registered, http_files, images):
    store_ref, store_dir = store
    url, other_dir = backend.new("store2")
    other = connect(driver, url, "store")
    seen = []
    copied = driver.copy_template(other, registered, seen.append)
    source = (store_dir / registered.install_path).read_bytes()
    assert (other_dir / copied.install_path).read_bytes() == source and seen[-1] == 100
    iso = on_store(driver.register_template(store_ref, template_ref(http_files.add("c.iso", images["iso"]), "ISO"),
                                            lambda p: None), store_ref)
    iso_copy = driver.copy_template(other, iso, lambda p: None)
    assert (other_dir / iso_copy.install_path).read_bytes() == images["iso"].read_bytes()
    gone = dataclasses.replace(registered, uuid=str(uuid.uuid4()), install_path=registered.install_path + ".x")
    with pytest.raises(StratoError):
        driver.copy_template(other, gone, lambda p: None)
    assert not (other_dir / "template" / "tmpl" / "0" / gone.uuid).exists() and leftovers(other_dir) == []
    with pytest.raises(InvalidParameterError, match="already on image store"):
        driver.copy_template(store_ref, registered, lambda p: None)


def test_open_template_reads_the_file(driver, store, registered):
    store_ref, store_dir = store
    size, handle = driver.open_template(store_ref, registered)
    with handle:
        data = b"".join(iter(lambda: handle.read(4096), b""))
    on_disk = (store_dir / registered.install_path).read_bytes()
    assert size == len(on_disk) and data == on_disk
    with pytest.raises(InvalidParameterError):
        driver.open_template(store_ref, dataclasses.replace(registered, install_path="../../etc/passwd"))


def test_template_copies_are_listed_and_deleted(driver, pool, root, registered):
    pool_ref, pool_dir = pool
    assert driver.template_copies(pool_ref) == [registered.uuid]
    driver.delete_template_copy(pool_ref, TemplateRef(uuid=registered.uuid, name="t", url="", format="QCOW2",
                                                      checksum=None, size_bytes=None))
    assert driver.template_copies(pool_ref) == [] and not (pool_dir / "templates" / f"{registered.uuid}.qcow2").exists()
