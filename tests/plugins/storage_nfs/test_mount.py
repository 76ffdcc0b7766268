"""The kernel-mount path's pieces that run on any machine: detection, the mount table,
and failures reported with the kernel's own words. Mounting itself is covered by the
``mount`` backend of test_driver.py where the kernel has an NFS client."""

from __future__ import annotations

import os

import pytest

from core.errors import ResourceUnavailableError
from plugins.storage_nfs import mount


def test_the_mount_table_is_read():
    assert mount.is_mounted("/")
    assert not mount.is_mounted(os.path.dirname(__file__))


def test_detection_gives_a_reason_or_none():
    reason = mount.unavailable_reason()
    assert reason is None or ("NFS" in reason or "mount.nfs" in reason or "root" in reason)


def test_a_failed_mount_says_why(tmp_path, ganesha):
    if mount.unavailable_reason() is None:
        pytest.skip("this kernel can mount NFS: the mount backend tests cover it")
    if not os.path.exists("/usr/sbin/mount.nfs") and not os.path.exists("/sbin/mount.nfs"):
        pytest.skip("mount.nfs (nfs-common) is not installed")
    with pytest.raises(mount.MountError, match="mount -t nfs .*127.0.0.1:/strato"):
        mount.mount(ganesha.server, ganesha.pseudo, str(tmp_path))
    assert not mount.is_mounted(str(tmp_path))


def test_forcing_a_mount_where_none_works_is_refused_cleanly(make_driver, ganesha, tmp_path):
    reason = mount.unavailable_reason()
    if reason is None:
        pytest.skip("this kernel can mount NFS")
    driver = make_driver("mount")
    with pytest.raises(ResourceUnavailableError, match="cannot mount"):
        driver.connect_pool(ganesha.url(""), {})
    assert not (tmp_path / "mnt").exists() or os.listdir(tmp_path / "mnt") == []
