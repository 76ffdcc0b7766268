"""Fixtures for the NFS storage plugin: a real nfs-ganesha server, an HTTP server for
template downloads, tiny disk images, and the three ways of reaching storage.

``ganesha`` runs ``rpcbind`` (unless one already answers) and ``ganesha.nfsd -F``
(VFS backend, NFSv3 and v4, one export of a temporary directory) for the whole
session, waits until ``nfs-ls`` lists the export, and stops both afterwards. When
a piece is missing or the server does not come up, tests that need it are
skipped with the reason, and the reason is also raised as a warning so it shows
in every summary.

``backend`` is parametrised over ``local`` (a directory, ``file://``), ``libnfs``
(``nfs://`` through userspace NFS) and ``mount`` (``nfs://`` mounted by the
kernel; skipped where the kernel has no NFS client, as on the CI machine).
"""

from __future__ import annotations

import functools
import http.server
import shutil
import socket
import subprocess
import threading
import time
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest

from plugins.storage_nfs import libnfs, mount
from plugins.storage_nfs.driver import NfsStorage

from .helpers import qemu_io

PSEUDO = "/strato"
GANESHA_CONF = """\
NFS_CORE_PARAM {{
  Protocols = 3, 4;
  NFS_Port = {nfs_port};
  MNT_Port = {mnt_port};
  Enable_NLM = false;
  Enable_RQUOTA = false;
  Bind_addr = 127.0.0.1;
  # NFSv3 clients (libnfs, QEMU) mount the pseudo path too, not the directory's real path
  Mount_Path_Pseudo = true;
}}
NFSV4 {{
  # no 90 s grace period after start: there is no client state to recover
  Graceless = true;
  RecoveryBackend = fs;
  RecoveryRoot = {recovery};
}}
EXPORT {{
  Export_Id = 77;
  Path = {export};
  Pseudo = {pseudo};
  Access_Type = RW;
  # the driver and QEMU run as root: their files must stay root's
  Squash = No_Root_Squash;
  Protocols = 3, 4;
  Transports = TCP;
  SecType = sys;
  FSAL {{ Name = VFS; }}
}}
EXPORT {{
  Export_Id = 78;
  Path = {export_ro};
  Pseudo = {pseudo}-ro;
  Access_Type = RO;
  Squash = No_Root_Squash;
  Protocols = 3, 4;
  Transports = TCP;
  SecType = sys;
  FSAL {{ Name = VFS; }}
}}
LOG {{ Default_Log_Level = WARN; }}
"""


def pytest_configure(config):
    config.addinivalue_line("markers", "ganesha: needs the real nfs-ganesha server of the `ganesha` fixture")


def _skip_loudly(reason: str):
    warnings.warn(pytest.PytestWarning(f"storage_nfs: {reason}"))
    pytest.skip(reason)


def _free_port(preferred: int | None = None) -> int:
    for candidate in ([preferred] if preferred else []) + [0]:
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", candidate))
            except OSError:
                continue
            return probe.getsockname()[1]
    raise RuntimeError("no free TCP port")


def _rpcbind_answers() -> bool:
    done = subprocess.run(["rpcinfo", "-p", "127.0.0.1"], capture_output=True, timeout=10)
    return done.returncode == 0


def _stop(process: subprocess.Popen, timeout: float = 10) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)


class Ganesha:
    """A running ganesha.nfsd; ``stop()``/``start()`` let a test take the server away."""

    server = "127.0.0.1"
    pseudo = PSEUDO

    def __init__(self, base: Path):
        self.base = base
        #: the directory ganesha exports (a test may look at the files behind the server)
        self.export_dir = base / "export"
        self.conf = base / "ganesha.conf"
        self.log = base / "ganesha.log"
        self.process: subprocess.Popen | None = None

    def url(self, sub: str) -> str:
        return f"nfs://{self.server}{self.pseudo}/{sub}"

    @property
    def read_only_url(self) -> str:
        """A second export, read-only."""
        return f"nfs://{self.server}{self.pseudo}-ro"

    def start(self, timeout: float = 30) -> str | None:
        """Start and wait until ``nfs-ls`` lists the export; None, or why it did not come up
        (the process is stopped then)."""
        self.process = subprocess.Popen(
            ["ganesha.nfsd", "-F", "-f", str(self.conf), "-L", str(self.log), "-p", str(self.base / "ganesha.pid")],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        url = f"nfs://{self.server}{self.pseudo}"
        while True:
            done = subprocess.run(["nfs-ls", url], capture_output=True, text=True, timeout=10)
            if done.returncode == 0:
                return None
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                tail = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else "(no log)"
                return f"nfs-ganesha did not serve {url}: {done.stderr.strip()}; log: {tail}"
            time.sleep(0.2)

    def stop(self) -> None:
        if self.process is not None:
            _stop(self.process)
            self.process = None


@pytest.fixture(scope="session")
def ganesha(tmp_path_factory):
    missing = [tool for tool in ("ganesha.nfsd", "rpcbind", "rpcinfo", "nfs-ls") if not shutil.which(tool)]
    if missing:
        _skip_loudly(f"cannot run an NFS server: {', '.join(missing)} not installed "
                     "(scripts/apt/storage.txt; run scripts/install-system.sh)")
    if not list(Path("/usr/lib").glob("*/ganesha/libfsalvfs.so")):
        _skip_loudly("nfs-ganesha's VFS backend (nfs-ganesha-vfs) is not installed")
    reason = libnfs.unavailable_reason()
    if reason:
        _skip_loudly(reason)

    base = tmp_path_factory.mktemp("ganesha")
    server = Ganesha(base)
    for directory in (server.export_dir, base / "export-ro", base / "recovery"):
        directory.mkdir()
    server.conf.write_text(GANESHA_CONF.format(
        nfs_port=_free_port(2049), mnt_port=_free_port(), recovery=base / "recovery", export=server.export_dir,
        export_ro=base / "export-ro", pseudo=PSEUDO))
    rpcbind = None
    try:
        if not _rpcbind_answers():
            # -f: stay in the foreground, so this fixture owns (and stops) the process
            with open(base / "rpcbind.log", "wb") as log:
                rpcbind = subprocess.Popen(["rpcbind", "-f", "-w"], stdout=log, stderr=subprocess.STDOUT,
                                           start_new_session=True)
            deadline = time.monotonic() + 10
            while not _rpcbind_answers():
                if rpcbind.poll() is not None or time.monotonic() > deadline:
                    _skip_loudly(f"rpcbind did not start: {(base / 'rpcbind.log').read_text(errors='replace')}")
                time.sleep(0.1)
        failure = server.start()
        if failure:
            _skip_loudly(failure)
        yield server
    finally:
        server.stop()
        if rpcbind is not None:
            _stop(rpcbind)


@dataclass
class Backend:
    """One way of reaching storage: ``new(name)`` gives a fresh (url, directory behind it)."""

    name: str
    mode: str
    _root: Path
    _ganesha: Ganesha | None

    def new(self, prefix: str) -> tuple[str, Path]:
        name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        directory = self._root / name
        directory.mkdir()
        if self._ganesha is None:
            return f"file://{directory}", directory
        return self._ganesha.url(name), directory


@pytest.fixture(params=["local", "libnfs", "mount"])
def backend(request, tmp_path):
    if request.param == "local":
        return Backend("local", "auto", tmp_path, None)
    if request.param == "mount":
        reason = mount.unavailable_reason()
        if reason:
            pytest.skip(f"kernel NFS mount path: {reason}")
    server = request.getfixturevalue("ganesha")
    return Backend(request.param, request.param, server.export_dir, server)


@pytest.fixture
def make_driver(tmp_path):
    """Factory for drivers (several act as several management servers); closes them all."""
    made: list[NfsStorage] = []

    def make(mode: str = "auto", **config) -> NfsStorage:
        driver = NfsStorage({"access": mode, "mount_root": str(tmp_path / "mnt"), "nfs_timeout_ms": 5000,
                             "download_timeout": 10, **config})
        made.append(driver)
        return driver

    yield make
    for driver in made:
        driver.close()


@pytest.fixture
def driver(backend, make_driver):
    return make_driver(backend.mode)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        """Requests are not worth a line each in the test output."""


@dataclass
class HttpFiles:
    root: Path
    base_url: str

    def add(self, name: str, data: bytes | Path) -> str:
        target = self.root / name
        if isinstance(data, Path):
            shutil.copyfile(data, target)
        else:
            target.write_bytes(data)
        return f"{self.base_url}/{name}"


@pytest.fixture(scope="session")
def http_files(tmp_path_factory):
    """An HTTP server on 127.0.0.1 serving a directory the tests write into."""
    root = tmp_path_factory.mktemp("http")
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="storage-nfs-http", daemon=True)
    thread.start()
    try:
        yield HttpFiles(root, f"http://127.0.0.1:{server.server_address[1]}")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@pytest.fixture(scope="session")
def images(tmp_path_factory):
    """Small images: a qcow2 template whose first 64 KiB are 0xab, a raw one, an overlay
    (has a backing file), junk, and something with an ISO 9660 signature."""
    if not shutil.which("qemu-img") or not shutil.which("qemu-io"):
        _skip_loudly("qemu-img/qemu-io not installed (Debian's qemu-utils)")
    root = tmp_path_factory.mktemp("images")
    qcow2 = root / "tiny.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(qcow2), "32M"], check=True)
    qemu_io(str(qcow2), "write -P 0xab 0 64k")
    raw = root / "tiny.raw"
    subprocess.run(["qemu-img", "convert", "-f", "qcow2", "-O", "raw", str(qcow2), str(raw)], check=True)
    overlay = root / "overlay.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(qcow2), "-F", "qcow2", str(overlay)],
                   check=True)
    junk = root / "junk.bin"
    junk.write_bytes(b"this is not a disk image\n" * 41)
    iso = root / "tiny.iso"
    # the primary volume descriptor: type 1, "CD001", version 1, at sector 16 (byte 32768)
    iso.write_bytes(b"\0" * 32768 + b"\x01CD001\x01" + b"\0" * (2048 * 2 - 7))
    return {"qcow2": qcow2, "raw": raw, "overlay": overlay, "junk": junk, "iso": iso}
