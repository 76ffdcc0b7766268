"""The ctypes libnfs binding against the real nfs-ganesha server: each call, and the
errno each failure maps to (the driver relies on FileNotFoundError/FileExistsError)."""

from __future__ import annotations

import errno
import os
import uuid

import pytest

from core.drivers import PoolRef
from core.errors import ResourceUnavailableError
from plugins.storage_nfs.libnfs import NfsClient


@pytest.fixture
def client(ganesha):
    name = f"lib-{uuid.uuid4().hex[:8]}"
    directory = ganesha.mkdir(name)
    with NfsClient(ganesha.server, f"{ganesha.pseudo}/{name}", timeout_ms=5000) as nfs:
        yield nfs, directory


def test_files_round_trip(client):
    nfs, directory = client
    data = os.urandom(3 * 1024 * 1024 + 17)  # more than one NFS WRITE, not a whole number of them
    nfs.makedirs("a/b")
    nfs.makedirs("a/b")  # mkdir -p: already there is fine
    with nfs.open("a/b/f", "xb") as handle:
        handle.write(data)
        handle.fsync()
    assert (directory / "a/b/f").read_bytes() == data
    assert nfs.stat("a/b/f").st_size == len(data)
    assert b"".join(nfs.iter_read("a/b/f", 1 << 20)) == data
    assert nfs.listdir("a/b") == ["f"] and nfs.isdir("a") and not nfs.isdir("a/b/f")

    nfs.link("a/b/f", "a/g")
    assert os.path.samefile(directory / "a/b/f", directory / "a/g")
    nfs.rename("a/g", "a/h")
    assert nfs.listdir("a") == ["b", "h"]
    with nfs.open("a/h", "wb") as handle:  # wb truncates
        handle.write(b"short")
    assert (directory / "a/h").read_bytes() == b"short"

    nfs.unlink("a/h")
    nfs.unlink("a/b/f")
    nfs.rmdir("a/b")
    nfs.rmdir("a")
    assert list(directory.iterdir()) == []


def test_capacity_is_the_exported_filesystems(client):
    nfs, directory = client
    total, free, available = nfs.statvfs()
    st = os.statvfs(directory)
    assert total == st.f_blocks * st.f_frsize
    assert 0 < available <= free <= total


def test_failures_carry_their_errno(client):
    nfs, _ = client
    with pytest.raises(FileNotFoundError, match="NFS stat /missing"):
        nfs.stat("missing")
    assert not nfs.exists("missing")
    with nfs.open("f", "xb") as handle:
        handle.write(b"x")
    with pytest.raises(FileExistsError):
        nfs.open("f", "xb")
    with pytest.raises(FileExistsError):
        nfs.link("f", "f")
    nfs.mkdir("d")
    with nfs.open("d/x", "xb"):
        pass
    with pytest.raises(OSError) as failure:
        nfs.rmdir("d")
    assert failure.value.errno == errno.ENOTEMPTY
    with pytest.raises(FileNotFoundError):
        nfs.unlink("missing")


def test_mounting_what_is_not_exported_is_refused(ganesha):
    with pytest.raises(PermissionError, match="MNT3ERR_ACCES"):
        NfsClient(ganesha.server, "/not-exported", timeout_ms=5000)


def test_a_closed_client_refuses_calls(client):
    nfs, _ = client
    nfs.close()
    nfs.close()
    with pytest.raises(OSError, match="closed"):
        nfs.stat("")


def test_the_driver_reconnects_after_the_server_restarts(ganesha, make_driver):
    """Take the NFS server away: calls fail promptly (no hang) and work again once it is back."""
    name = f"restart-{uuid.uuid4().hex[:6]}"
    ganesha.mkdir(name)
    driver = make_driver("libnfs")
    url = ganesha.url(name)
    pool = PoolRef("p", "p", url, driver.connect_pool(url, {}).details)
    ganesha.stop()
    try:
        with pytest.raises(ResourceUnavailableError):
            driver.pool_stats(pool)
    finally:
        ganesha.start()
    assert driver.pool_stats(pool).capacity_bytes > 0
