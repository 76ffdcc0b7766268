"""The NfsStorage driver against real storage: a local directory, a real nfs-ganesha
export through libnfs, and (where the kernel has NFS) a kernel mount.

Every test runs once per backend (see ``backend`` in conftest.py). Assertions look
at the files behind the server (the exported directory) and open images with
qemu-img/qemu-io through the path the driver returned, as a hypervisor would.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import subprocess
import threading
import uuid

import pytest

from core.drivers import ImageStoreDriver, PoolRef, PrimaryStorageDriver, TemplateRef, VolumeSpec
from core.errors import (
    InternalError,
    InvalidParameterError,
    ResourceUnavailableError,
    StratoError,
    UnsupportedError,
)
from plugins.storage_nfs import mount
from plugins.storage_nfs.driver import NfsStorage

from .helpers import image_info, leftovers, qemu_io

MiB = 1024 * 1024


def connect(driver: NfsStorage, url: str, role: str = "pool") -> PoolRef:
    info = driver.connect_pool(url, {}) if role == "pool" else driver.connect_store(url, {})
    return PoolRef(uuid=str(uuid.uuid4()), name=f"{role}-{url.rsplit('/', 1)[-1]}", url=url, details=info.details)


def template_ref(url: str, fmt: str = "QCOW2", checksum: str | None = None) -> TemplateRef:
    return TemplateRef(uuid=str(uuid.uuid4()), name="tiny", url=url, format=fmt, checksum=checksum,
                       size_bytes=None)


def on_store(template: TemplateRef, store: PoolRef) -> TemplateRef:
    """The template as the core hands it to create_volume: with the store it is on."""
    return dataclasses.replace(template, store_url=store.url, store_details=store.details)


def volume_spec(pool: PoolRef, size: int = 0, kind: str = "DATADISK", fmt: str = "QCOW2") -> VolumeSpec:
    return VolumeSpec(uuid=str(uuid.uuid4()), name="vol", volume_type=kind, size_bytes=size, device_id=0,
                      pool_url=pool.url, pool_details=pool.details, format=fmt)


@pytest.fixture
def pool(backend, driver):
    url, directory = backend.new("pool")
    return connect(driver, url), directory


@pytest.fixture
def store(backend, driver):
    url, directory = backend.new("store")
    return connect(driver, url, "store"), directory


@pytest.fixture
def registered(driver, store, http_files, images):
    """The tiny qcow2 template, registered over HTTP on the store."""
    store_ref, _ = store
    url = http_files.add(f"tiny-{uuid.uuid4().hex[:6]}.qcow2", images["qcow2"])
    md5 = hashlib.md5(images["qcow2"].read_bytes()).hexdigest()
    return on_store(driver.register_template(store_ref, template_ref(url, checksum=md5), lambda percent: None),
                    store_ref)


# -- contract and connection --------------------------------------------------


def test_one_class_plays_both_roles():
    assert issubclass(NfsStorage, PrimaryStorageDriver) and issubclass(NfsStorage, ImageStoreDriver)
    assert NfsStorage.name == "nfs"
    assert NfsStorage.url_schemes == ("nfs", "file", "sharedmountpoint")


def test_connect_reads_capacity_and_says_how_it_reaches_the_pool(backend, driver):
    url, directory = backend.new("pool")
    info = driver.connect_pool(url, {})
    st = os.statvfs(directory)
    assert info.capacity_bytes == st.f_blocks * st.f_frsize
    assert 0 < info.used_bytes <= info.capacity_bytes
    access = "local" if backend.name == "local" else backend.name
    assert info.details["access"] == access
    if access == "libnfs":
        assert info.details["url_prefix"] == url and info.details["export"].endswith(url.rsplit("/", 1)[-1])
    else:
        assert os.path.isdir(info.details["mountpoint"])
    assert leftovers(directory) == []
    stats = driver.pool_stats(PoolRef("p", "p", url, info.details))
    assert stats.capacity_bytes == info.capacity_bytes and stats.details["access"] == access


def test_connect_refuses_what_it_cannot_reach(backend, driver, tmp_path):
    url, directory = backend.new("pool")
    missing = url + "-missing"
    with pytest.raises(ResourceUnavailableError):
        driver.connect_pool(missing, {})
    with pytest.raises(InvalidParameterError):
        driver.connect_pool("ftp://host/x", {})


def test_auto_mode_picks_a_way_and_says_why(ganesha, make_driver):
    name = f"auto-{uuid.uuid4().hex[:6]}"
    ganesha.mkdir(name)
    info = make_driver("auto").connect_pool(ganesha.url(name), {})
    reason = mount.unavailable_reason()
    if reason is None:
        assert info.details["access"] == "mount"
    else:
        assert info.details["access"] == "libnfs" and info.details["mount_unavailable"] == reason


def test_an_unreachable_nfs_server_is_unavailable(make_driver):
    driver = make_driver("libnfs")
    with pytest.raises(ResourceUnavailableError, match="127.0.0.3"):
        driver.connect_pool("nfs://127.0.0.3/export", {})


def test_a_read_only_export_is_refused(ganesha, make_driver):
    with pytest.raises(ResourceUnavailableError, match="storage nfs://127.0.0.1/strato-ro"):
        make_driver("libnfs").connect_pool(ganesha.read_only_url, {})


def test_a_read_only_directory_is_refused(make_driver, tmp_path):
    """A read-only tmpfs: root may write into any directory, but not into a read-only mount."""
    directory = tmp_path / "ro"
    directory.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(directory)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot make a read-only mount here: {done.stderr.strip()}")
    try:
        with pytest.raises(ResourceUnavailableError, match="Read-only file system"):
            make_driver("auto").connect_pool(f"file://{directory}", {})
    finally:
        subprocess.run(["umount", str(directory)], check=True)


def test_a_pool_is_reopened_after_a_restart(backend, make_driver, pool):
    pool_ref, directory = pool
    restarted = make_driver(backend.mode)
    volume = volume_spec(pool_ref, 8 * MiB)
    path = restarted.create_volume(pool_ref, volume, None)
    assert image_info(path)["virtual-size"] == 8 * MiB
    assert (directory / f"{volume.uuid}.qcow2").is_file()


# -- templates on the image store ---------------------------------------------


def test_register_template_over_http(driver, store, http_files, images):
    store_ref, directory = store
    url = http_files.add("reg.qcow2", images["qcow2"])
    digest = hashlib.sha256(images["qcow2"].read_bytes()).hexdigest()
    seen: list[int] = []
    template = template_ref(url, checksum="{sha256}" + digest)
    result = driver.register_template(store_ref, template, seen.append)

    rel = f"template/tmpl/0/{template.uuid}/{template.uuid}.qcow2"
    assert (directory / rel).read_bytes() == images["qcow2"].read_bytes()
    assert result.size_bytes == 32 * MiB  # the virtual size, not the file's
    assert result.uuid == template.uuid and result.url == url
    assert result.install_path == rel  # relative to the store
    assert seen[0] == 0 and seen[-1] == 100 and seen == sorted(seen)
    assert leftovers(directory) == []


def test_register_template_from_a_file_url_with_bare_md5(driver, store, images):
    store_ref, directory = store
    md5 = hashlib.md5(images["raw"].read_bytes()).hexdigest()
    template = template_ref(f"file://{images['raw']}", "RAW", md5)
    result = driver.register_template(store_ref, template, lambda p: None)
    assert (directory / f"template/tmpl/0/{template.uuid}/{template.uuid}.raw").stat().st_size == 32 * MiB
    assert result.size_bytes == 32 * MiB


def test_register_an_iso(driver, store, http_files, images):
    store_ref, directory = store
    template = template_ref(http_files.add("tiny.iso", images["iso"]), "ISO")
    result = driver.register_template(store_ref, template, lambda p: None)
    assert result.size_bytes == images["iso"].stat().st_size
    assert (directory / f"template/tmpl/0/{template.uuid}/{template.uuid}.iso").is_file()


@pytest.mark.parametrize("case, fmt, words", [
    ("junk", "QCOW2", "raw data, no disk image"),
    ("junk", "RAW", "512-byte sectors"),
    ("qcow2", "RAW", "finds a qcow2 image"),
    ("qcow2", "VMDK", "declared VMDK"),
    ("junk", "ISO", "not an ISO 9660"),
    ("overlay", "QCOW2", "backing file"),
    ("wrong-checksum", "QCOW2", "checksum mismatch"),
    ("404", "QCOW2", "HTTP 404"),
])
def test_register_refuses_bad_files_and_leaves_nothing(driver, store, http_files, images, case, fmt, words):
    store_ref, directory = store
    checksum = None
    if case == "404":
        url = f"{http_files.base_url}/no-such-file.qcow2"
    elif case == "wrong-checksum":
        url = http_files.add("tiny-sum.qcow2", images["qcow2"])
        checksum = "{md5}" + "0" * 32
    else:
        url = http_files.add(f"{case}.{uuid.uuid4().hex[:6]}", images[case])
    seen: list[int] = []
    with pytest.raises(InvalidParameterError, match=words):
        driver.register_template(store_ref, template_ref(url, fmt, checksum), seen.append)
    assert 100 not in seen
    assert not (directory / "template" / "tmpl" / "0").exists() or list(
        (directory / "template" / "tmpl" / "0").iterdir()) == []
    assert leftovers(directory) == []


def test_register_refuses_bad_requests_before_downloading(driver, store):
    store_ref, directory = store
    with pytest.raises(InvalidParameterError, match="checksum"):
        driver.register_template(store_ref, template_ref("http://127.0.0.1:1/x", checksum="{md5}xyz"), print)
    with pytest.raises(InvalidParameterError, match="format"):
        driver.register_template(store_ref, template_ref("http://127.0.0.1:1/x", "ZIP"), print)
    with pytest.raises(InvalidParameterError, match="only http, https and file"):
        driver.register_template(store_ref, template_ref("ftp://127.0.0.1/x"), lambda p: None)
    assert leftovers(directory) == []


def test_register_reports_an_unreachable_source(driver, store):
    store_ref, directory = store
    with socket_closed_port() as port:
        with pytest.raises(ResourceUnavailableError, match="cannot download"):
            driver.register_template(store_ref, template_ref(f"http://127.0.0.1:{port}/t.qcow2"), lambda p: None)
    assert leftovers(directory) == []


def test_file_urls_can_be_confined(make_driver, backend, images, tmp_path):
    driver = make_driver(backend.mode, file_url_dirs=[str(tmp_path / "allowed")])
    url, _ = backend.new("store")
    store_ref = connect(driver, url, "store")
    with pytest.raises(InvalidParameterError, match="must lie under"):
        driver.register_template(store_ref, template_ref(f"file://{images['qcow2']}"), lambda p: None)
    with pytest.raises(InvalidParameterError, match="not a regular file"):
        make_driver(backend.mode).register_template(store_ref, template_ref("file:///dev/zero", "RAW"),
                                                    lambda p: None)


def test_delete_template_is_idempotent(driver, store, registered):
    store_ref, directory = store
    assert (directory / "template/tmpl/0" / registered.uuid).is_dir()
    driver.delete_template(store_ref, registered)
    driver.delete_template(store_ref, registered)
    assert not (directory / "template/tmpl/0" / registered.uuid).exists()
    assert (directory / "template/tmpl").is_dir()


# -- volumes ------------------------------------------------------------------


def test_data_volume(driver, pool):
    pool_ref, directory = pool
    volume = volume_spec(pool_ref, 64 * MiB)
    path = driver.create_volume(pool_ref, volume, None)
    if pool_ref.details["access"] == "libnfs":
        assert path == f"{pool_ref.url}/{volume.uuid}.qcow2"
    else:
        assert path == os.path.join(pool_ref.details["mountpoint"], f"{volume.uuid}.qcow2")
    info = image_info(path)
    assert info["format"] == "qcow2" and info["virtual-size"] == 64 * MiB
    assert (directory / f"{volume.uuid}.qcow2").is_file()
    assert driver.create_volume(pool_ref, volume, None) == path  # already there: returned as is


def test_raw_data_volume(driver, pool):
    pool_ref, directory = pool
    volume = volume_spec(pool_ref, 16 * MiB, fmt="RAW")
    path = driver.create_volume(pool_ref, volume, None)
    assert path.endswith(".raw") and (directory / f"{volume.uuid}.raw").stat().st_size == 16 * MiB


def test_a_data_volume_needs_a_size(driver, pool):
    pool_ref, directory = pool
    with pytest.raises(InvalidParameterError, match="size"):
        driver.create_volume(pool_ref, volume_spec(pool_ref, 0), None)
    assert [p.name for p in directory.iterdir()] == []


def test_root_volume_is_an_overlay_on_one_template_copy(driver, pool, registered):
    pool_ref, directory = pool
    first = volume_spec(pool_ref, 0, "ROOT")
    second = volume_spec(pool_ref, 48 * MiB, "ROOT")
    path1 = driver.create_volume(pool_ref, first, registered)
    path2 = driver.create_volume(pool_ref, second, registered)

    cache = directory / "templates" / f"{registered.uuid}.qcow2"
    assert cache.is_file() and list((directory / "templates").iterdir()) == [cache]
    info1, info2 = image_info(path1), image_info(path2)
    assert info1["virtual-size"] == 32 * MiB and info2["virtual-size"] == 48 * MiB
    expected_backing = (f"{pool_ref.url}/templates/{registered.uuid}.qcow2"
                        if pool_ref.details["access"] == "libnfs" else f"templates/{registered.uuid}.qcow2")
    assert info1["backing-filename"] == expected_backing
    # the template's data shows through the overlay, opened the way a hypervisor would
    qemu_io(path1, "read -P 0xab 0 64k")
    qemu_io(path2, "write -P 0xcd 0 4k")
    qemu_io(path2, "read -P 0xcd 0 4k")
    qemu_io(path1, "read -P 0xab 0 4k")  # the other volume and the template are untouched
    assert leftovers(directory) == []


def test_raw_root_volume_is_a_full_copy(driver, pool, registered):
    pool_ref, directory = pool
    volume = volume_spec(pool_ref, 40 * MiB, "ROOT", "RAW")
    path = driver.create_volume(pool_ref, volume, registered)
    info = image_info(path)
    assert info["format"] == "raw" and info["virtual-size"] == 40 * MiB and "backing-filename" not in info
    qemu_io(path, "read -P 0xab 0 64k", "raw")


def test_root_volume_from_an_iso_is_blank(driver, pool, store, http_files, images):
    pool_ref, directory = pool
    iso = driver.register_template(store[0], template_ref(http_files.add("boot.iso", images["iso"]), "ISO"),
                                   lambda p: None)
    path = driver.create_volume(pool_ref, volume_spec(pool_ref, 20 * MiB, "ROOT"), iso)
    assert image_info(path)["virtual-size"] == 20 * MiB and not (directory / "templates").exists()


def test_root_volume_smaller_than_its_template_is_refused(driver, pool, registered):
    pool_ref, directory = pool
    volume = volume_spec(pool_ref, 8 * MiB, "ROOT")
    with pytest.raises(InvalidParameterError, match="smaller"):
        driver.create_volume(pool_ref, volume, registered)
    assert not (directory / f"{volume.uuid}.qcow2").exists() and leftovers(directory) == []


def test_a_failed_template_copy_leaves_no_file(driver, pool, registered):
    pool_ref, directory = pool
    gone = TemplateRef(**{**registered.__dict__, "uuid": str(uuid.uuid4()),
                          "install_path": registered.install_path + ".missing"})
    volume = volume_spec(pool_ref, 0, "ROOT")
    with pytest.raises(StratoError):
        driver.create_volume(pool_ref, volume, gone)
    assert not (directory / f"{volume.uuid}.qcow2").exists()
    assert not (directory / "templates" / f"{gone.uuid}.qcow2").exists() and leftovers(directory) == []
    no_path = TemplateRef(**{**registered.__dict__, "install_path": None})
    with pytest.raises(InvalidParameterError, match="not on an image store"):
        driver.create_volume(pool_ref, volume_spec(pool_ref, 0, "ROOT"), no_path)


def test_an_ova_cannot_back_a_volume(driver, pool, registered):
    pool_ref, _ = pool
    ova = TemplateRef(**{**registered.__dict__, "format": "OVA"})
    with pytest.raises(UnsupportedError):
        driver.create_volume(pool_ref, volume_spec(pool_ref, 0, "ROOT"), ova)


def test_concurrent_root_volumes_copy_the_template_once(backend, make_driver, pool, registered):
    """Two drivers stand for two management servers; each runs three jobs at once."""
    pool_ref, directory = pool
    drivers = [make_driver(backend.mode), make_driver(backend.mode)]
    volumes = [volume_spec(pool_ref, 0, "ROOT") for _ in range(6)]
    paths: dict[str, str] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(volumes))

    def create(index: int) -> None:
        try:
            barrier.wait(10)
            paths[volumes[index].uuid] = drivers[index % 2].create_volume(pool_ref, volumes[index], registered)
        except BaseException as exc:  # collected and re-raised by the test below
            errors.append(exc)

    threads = [threading.Thread(target=create, args=(i,)) for i in range(len(volumes))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert errors == []
    assert [p.name for p in (directory / "templates").iterdir()] == [f"{registered.uuid}.qcow2"]
    assert leftovers(directory) == []
    for volume in volumes:
        qemu_io(paths[volume.uuid], "read -P 0xab 0 64k")


def test_delete_volume_is_idempotent(driver, pool):
    pool_ref, directory = pool
    volume = volume_spec(pool_ref, 4 * MiB)
    volume.path = driver.create_volume(pool_ref, volume, None)
    driver.delete_volume(pool_ref, volume)
    driver.delete_volume(pool_ref, volume)
    assert list(directory.iterdir()) == []
    never_made = volume_spec(pool_ref, 4 * MiB)
    driver.delete_volume(pool_ref, never_made)


def test_delete_volume_after_a_crashed_create_removes_its_leftovers(driver, pool):
    """path None: the core never learnt where the volume went; the uuid says."""
    pool_ref, directory = pool
    volume = volume_spec(pool_ref, 4 * MiB)
    driver.create_volume(pool_ref, volume, None)
    root = pool_ref.details.get("url_prefix") or pool_ref.details["mountpoint"]
    # what a create that died half-way leaves, made through the same way as the driver's files
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", f"{root}/.{volume.uuid}.qcow2.part-deadbeef",
                    "1M"], check=True)
    keep = volume_spec(pool_ref, 4 * MiB)
    driver.create_volume(pool_ref, keep, None)
    driver.delete_volume(pool_ref, volume)
    assert sorted(p.name for p in directory.iterdir()) == [f"{keep.uuid}.qcow2"]


def test_delete_volume_refuses_a_path_outside_the_pool(driver, pool, tmp_path):
    pool_ref, _ = pool
    outsider = tmp_path / "precious.qcow2"
    outsider.write_bytes(b"keep")
    volume = volume_spec(pool_ref, 4 * MiB)
    volume.path = str(outsider)
    with pytest.raises(InvalidParameterError, match="not this volume.s file"):
        driver.delete_volume(pool_ref, volume)
    assert outsider.read_bytes() == b"keep"
    root = pool_ref.details.get("url_prefix") or pool_ref.details["mountpoint"]
    volume.path = f"{root}/templates/{volume.uuid}.qcow2"  # the right name in the wrong place
    with pytest.raises(InvalidParameterError, match="not this volume.s file"):
        driver.delete_volume(pool_ref, volume)


def test_resize_grows_and_refuses_to_shrink(driver, pool):
    pool_ref, _ = pool
    volume = volume_spec(pool_ref, 16 * MiB)
    volume.path = driver.create_volume(pool_ref, volume, None)
    driver.resize_volume(pool_ref, volume, 32 * MiB)
    assert image_info(volume.path)["virtual-size"] == 32 * MiB
    driver.resize_volume(pool_ref, volume, 32 * MiB)
    with pytest.raises(InvalidParameterError, match="shrink"):
        driver.resize_volume(pool_ref, volume, 8 * MiB)
    assert image_info(volume.path)["virtual-size"] == 32 * MiB


def test_resize_of_a_missing_volume_fails_clearly(driver, pool):
    pool_ref, _ = pool
    with pytest.raises(InternalError, match="resize volume"):
        driver.resize_volume(pool_ref, volume_spec(pool_ref, 4 * MiB), 8 * MiB)


# -- snapshots ----------------------------------------------------------------


def test_backup_and_restore_a_snapshot(driver, pool, store, registered):
    pool_ref, pool_dir = pool
    store_ref, store_dir = store
    volume = volume_spec(pool_ref, 0, "ROOT")
    volume.path = driver.create_volume(pool_ref, volume, registered)
    qemu_io(volume.path, "write -P 0x11 1M 64k")
    driver.snapshot_volume(pool_ref, volume, "s1")
    assert driver.list_volume_snapshots(pool_ref, volume) == ["s1"]
    qemu_io(volume.path, "write -P 0x22 1M 64k")  # after the snapshot: not in the backup

    snapshot_uuid = str(uuid.uuid4())
    backup = driver.backup_snapshot(pool_ref, volume, store_ref, snapshot_uuid, account=2, internal_snapshot="s1")
    rel = f"snapshots/2/{volume.uuid}/{snapshot_uuid}.qcow2"
    assert backup == rel and (store_dir / rel).is_file()
    info = image_info(str(store_dir / rel))
    assert "backing-filename" not in info  # flattened: the template's data is in it
    qemu_io(str(store_dir / rel), "read -P 0xab 0 64k")
    qemu_io(str(store_dir / rel), "read -P 0x11 1M 64k")
    driver.delete_volume_snapshot(pool_ref, volume, "s1")
    driver.delete_volume_snapshot(pool_ref, volume, "s1")
    assert driver.list_volume_snapshots(pool_ref, volume) == []

    driver.restore_snapshot(pool_ref, volume, store_ref, backup)
    qemu_io(volume.path, "read -P 0x11 1M 64k")
    qemu_io(volume.path, "read -P 0xab 0 64k")
    assert leftovers(pool_dir) == [] and leftovers(store_dir) == []

    driver.delete_snapshot_backup(store_ref, backup)
    driver.delete_snapshot_backup(store_ref, backup)
    assert not (store_dir / "snapshots" / "2").exists()
    for not_a_backup in (registered.install_path, "snapshots/../template/x", "/etc/passwd"):
        with pytest.raises(InvalidParameterError):
            driver.delete_snapshot_backup(store_ref, not_a_backup)


def test_internal_snapshot_revert(driver, pool):
    pool_ref, _ = pool
    volume = volume_spec(pool_ref, 8 * MiB)
    volume.path = driver.create_volume(pool_ref, volume, None)
    qemu_io(volume.path, "write -P 0x33 0 4k")
    driver.snapshot_volume(pool_ref, volume, "before")
    qemu_io(volume.path, "write -P 0x44 0 4k")
    driver.revert_volume_snapshot(pool_ref, volume, "before")
    qemu_io(volume.path, "read -P 0x33 0 4k")


# -- pools and stores on different backends ------------------------------------


def test_a_libnfs_store_feeds_a_local_pool(ganesha, make_driver, tmp_path, http_files, images):
    driver = make_driver("auto")
    store_dir = ganesha.mkdir(f"mixed-{uuid.uuid4().hex[:6]}")
    store_ref = connect(driver, ganesha.url(store_dir.name), "store")
    pool_dir = tmp_path / "local-pool"
    pool_dir.mkdir()
    pool_ref = connect(driver, f"file://{pool_dir}")
    template = on_store(driver.register_template(store_ref, template_ref(http_files.add("mixed.qcow2",
                                                                                      images["qcow2"])),
                                                 lambda p: None), store_ref)
    path = driver.create_volume(pool_ref, volume_spec(pool_ref, 0, "ROOT"), template)
    qemu_io(path, "read -P 0xab 0 64k")
    # another management server has not connected the store: it reaches it from the template's store details
    other = make_driver("auto")
    other_pool = PoolRef(pool_ref.uuid, pool_ref.name, pool_ref.url, pool_ref.details)
    path = other.create_volume(other_pool, volume_spec(pool_ref, 0, "ROOT"), template)
    qemu_io(path, "read -P 0xab 0 64k")


class socket_closed_port:
    """A TCP port on 127.0.0.1 that nothing listens on, for the duration of the block."""

    def __enter__(self) -> int:
        import socket
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        return self._socket.getsockname()[1]

    def __exit__(self, *exc) -> None:
        self._socket.close()


def test_qemu_img_is_required(make_driver, tmp_path):
    driver = make_driver("auto", qemu_img="/nonexistent/qemu-img")
    with pytest.raises(ResourceUnavailableError, match="qemu-img"):
        driver.connect_pool(f"file://{tmp_path}", {})
    assert os.listdir(tmp_path) == []
