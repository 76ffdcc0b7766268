"""Fixtures for the KVM plugin: the real libvirtd, a directory QEMU may read, the test
guest template, and an export of the session's NFS server for network disks.

Markers: ``kvm`` (needs the real libvirtd + QEMU, started through
scripts/services/libvirtd.sh) and ``slow`` (boots a real guest). Whatever cannot be had
here (libvirt-python, libvirtd, root, the template's tools, the NFS server) skips the tests
that need it with the reason, also raised as a warning so it shows in every summary.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.nfs_server import Ganesha, GaneshaUnavailable

from .helpers import REPO, cached_template_path, skip_loudly, which_all
from .second_libvirtd import SecondLibvirtd


def pytest_configure(config):
    config.addinivalue_line("markers", "kvm: needs the real libvirtd and QEMU (scripts/services/libvirtd.sh)")
    config.addinivalue_line("markers", "slow: boots a real guest under QEMU (tens of seconds)")


def pytest_report_header(config):
    try:
        import libvirt
    except ImportError:
        return "hypervisor_kvm: libvirt-python is NOT installed: the kvm tests will skip"
    return f"hypervisor_kvm: libvirt-python {libvirt.getVersion() // 1_000_000}.{libvirt.getVersion() // 1000 % 1000}"


@pytest.fixture(scope="session")
def libvirt_module():
    try:
        import libvirt
    except ImportError:
        skip_loudly("libvirt-python is not installed (pip install 'strato[kvm]', which needs libvirt-dev)")
    return libvirt


@pytest.fixture(scope="session")
def libvirtd(libvirt_module) -> str:
    """The URI of this machine's system libvirtd, started when it is not running."""
    if os.geteuid() != 0:
        skip_loudly("the real-libvirtd tests need root (to start libvirtd and create bridges)")
    missing = which_all("libvirtd", "virtlogd", "virsh", "qemu-system-x86_64", "qemu-img")
    if missing:
        skip_loudly(f"{', '.join(missing)} not installed (scripts/apt/kvm.txt; run scripts/install-system.sh)")
    done = subprocess.run(["bash", str(REPO / "scripts/services/libvirtd.sh"), "60"], capture_output=True,
                          text=True, timeout=120)
    if done.returncode != 0:
        skip_loudly(f"libvirtd could not be started: {done.stderr.strip()}")
    return "qemu:///system"


@pytest.fixture(scope="session")
def second_libvirtd(libvirtd, libvirt_module) -> str:
    """The URI of a second libvirtd of this session (``second_libvirtd.SecondLibvirtd``): host B
    of the live-migration tests, stopped and removed at the end of the session."""
    if which_all("unshare", "mount"):
        skip_loudly("unshare/mount (util-linux) are missing: no second libvirtd for the migration tests")
    try:
        daemon = SecondLibvirtd(libvirt_module)
    except RuntimeError as exc:
        skip_loudly(str(exc))
    yield daemon.uri
    daemon.close()


@pytest.fixture(scope="session", autouse=True)
def _remove_libvirts_logs_of_test_domains():
    """libvirt keeps a QEMU log per domain name (/var/log/libvirt/qemu/<name>.log) after the
    domain is gone; remove those of the domains these tests made."""
    started = time.time()
    yield
    for pattern in ("i-kvmtest-*.log", "kvmtest-*.log"):
        for log in Path("/var/log/libvirt/qemu").glob(pattern):
            if log.stat().st_mtime >= started - 1:
                log.unlink()


@pytest.fixture(scope="session")
def workdir():
    """A directory for disk images and console logs that QEMU can reach.

    QEMU runs as libvirt-qemu, which cannot traverse pytest's tmp_path (its parents are
    0700), so this is a 0755 directory of its own, removed at the end of the session.
    """
    path = Path(tempfile.mkdtemp(prefix="strato-kvm-", dir="/var/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


@pytest.fixture(scope="session")
def guest_template(workdir) -> Path:
    """The test guest (scripts/build-test-template.sh), copied into the session's workdir.

    Built into the cache the script keeps its downloads in ($STRATO_CACHE_DIR, default
    ~/.cache/strato), where a later session finds it (the script does nothing when its
    inputs did not change); copied because QEMU cannot read a home directory.
    """
    built = cached_template_path()
    done = subprocess.run(["bash", str(REPO / "scripts/build-test-template.sh"), str(built)], capture_output=True,
                          text=True, timeout=600)
    if done.returncode == 2:  # a tool or the package lists are missing
        skip_loudly(f"cannot build the test guest: {done.stderr.strip()}")
    assert done.returncode == 0, f"build-test-template.sh failed:\n{done.stderr}"
    out = workdir / "strato-test-guest.qcow2"
    shutil.copyfile(built, out)
    out.chmod(0o644)
    return out


# -- an NFS export for network disks -----------------------------------------------------------


@dataclasses.dataclass
class NfsExport:
    url: str
    directory: Path
    server: Ganesha

    def still_ours(self) -> bool:
        """rpcbind still sends NFS clients to the session's server (an NFS server started
        outside the test sessions' lock could register itself over it at any time)."""
        return self.server.registered_here()


@pytest.fixture(scope="session")
def nfs_export(nfs_server, workdir):
    """An ``NfsExport``: ``nfs://127.0.0.1/kvmtest``, a directory of the workdir exported by
    the session's NFS server (``nfs_server``, shared with the other plugin suites)."""
    directory = workdir / "nfs-export"
    directory.mkdir()
    directory.chmod(0o755)
    try:
        url = nfs_server.add_export("kvmtest", directory)
    except GaneshaUnavailable as exc:
        skip_loudly(str(exc))
    return NfsExport(url, directory, nfs_server)
