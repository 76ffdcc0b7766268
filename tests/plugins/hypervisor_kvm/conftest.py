"""Fixtures for the KVM plugin: the real libvirtd, a directory QEMU may read, the test
guest template, and an NFS server for network disks.

Markers: ``kvm`` (needs the real libvirtd + QEMU, started through
scripts/services/libvirtd.sh) and ``slow`` (boots a real guest). Whatever cannot be had
here (libvirt-python, libvirtd, root, the template's tools, nfs-ganesha) skips the tests
that need it with the reason, also raised as a warning so it shows in every summary.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from .helpers import REPO, cached_template_path, run, skip_loudly, which_all


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


# -- an NFS server (nfs-ganesha) for network disks ---------------------------------------------

GANESHA_CONF = """\
NFS_CORE_PARAM {{
  Protocols = 3, 4;
  NFS_Port = {nfs_port};
  MNT_Port = {mnt_port};
  Enable_NLM = false;
  Enable_RQUOTA = false;
  Bind_addr = 127.0.0.1;
  # QEMU's libnfs speaks NFSv3 and mounts the directory holding the image
  Mount_Path_Pseudo = true;
}}
NFSV4 {{
  Graceless = true;
  RecoveryBackend = fs;
  RecoveryRoot = {recovery};
}}
EXPORT {{
  Export_Id = 91;
  Path = {export};
  Pseudo = /kvmtest;
  Access_Type = RW;
  # QEMU reaches the files as root (the driver's <identity user='+0'>)
  Squash = No_Root_Squash;
  Protocols = 3, 4;
  Transports = TCP;
  SecType = sys;
  FSAL {{ Name = VFS; }}
}}
LOG {{ Default_Log_Level = WARN; }}
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


@dataclasses.dataclass
class NfsExport:
    url: str
    directory: Path
    nfs_port: int

    def still_ours(self) -> bool:
        """rpcbind still sends NFS clients to this server. On a shared machine another
        NFS server (another test run's) may register itself over it at any time."""
        out = run("rpcinfo", "-p", "127.0.0.1", check=False, timeout=10).stdout
        return any(line.split()[-1] == "nfs" and line.split()[3] == str(self.nfs_port)
                   for line in out.splitlines() if len(line.split()) == 5)


@pytest.fixture(scope="session")
def nfs_export(workdir):
    """An ``NfsExport``: ``nfs://127.0.0.1/kvmtest`` served by nfs-ganesha from a
    directory of the workdir. rpcbind is started too unless one already answers."""
    missing = which_all("ganesha.nfsd", "rpcbind", "rpcinfo", "nfs-ls")
    if missing:
        skip_loudly(f"cannot serve NFS: {', '.join(missing)} not installed (scripts/apt/kvm.txt)")
    base = workdir / "nfs"
    export = base / "export"
    recovery = base / "recovery"
    for directory in (base, export, recovery):
        directory.mkdir()
    export.chmod(0o755)
    conf = base / "ganesha.conf"
    nfs_port = _free_port()
    conf.write_text(GANESHA_CONF.format(nfs_port=nfs_port, mnt_port=_free_port(), recovery=recovery,
                                        export=export))
    registered = run("rpcinfo", "-p", "127.0.0.1", check=False, timeout=10)
    if registered.returncode == 0 and " nfs" in registered.stdout:
        # QEMU's libnfs finds the server through rpcbind, which maps one NFS server only
        skip_loudly("another NFS server is registered with rpcbind (another test's nfs-ganesha?); "
                    "QEMU would reach that one. Run tests/plugins/hypervisor_kvm on its own to test NFS disks")
    processes: list[subprocess.Popen] = []
    try:
        if registered.returncode != 0:
            processes.append(subprocess.Popen(["rpcbind", "-f", "-w"], stdout=subprocess.DEVNULL,
                                              stderr=subprocess.DEVNULL, start_new_session=True))
            deadline = time.monotonic() + 10
            while run("rpcinfo", "-p", "127.0.0.1", check=False, timeout=10).returncode != 0:
                if time.monotonic() > deadline:
                    skip_loudly("rpcbind did not start")
                time.sleep(0.1)
        log = base / "ganesha.log"
        processes.append(subprocess.Popen(
            ["ganesha.nfsd", "-F", "-f", str(conf), "-L", str(log), "-p", str(base / "ganesha.pid")],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True))
        url = "nfs://127.0.0.1/kvmtest"
        deadline = time.monotonic() + 30
        while run("nfs-ls", url, check=False, timeout=10).returncode != 0:
            if processes[-1].poll() is not None or time.monotonic() > deadline:
                skip_loudly(f"nfs-ganesha did not serve {url}: {log.read_text(errors='replace')[-1500:]}")
            time.sleep(0.2)
        yield NfsExport(url, export, nfs_port)
    finally:
        for process in reversed(processes):
            _stop(process)
