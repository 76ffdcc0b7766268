"""Fixtures for the NFS storage plugin: a real nfs-ganesha server, an HTTP server for
template downloads, tiny disk images, and the three ways of reaching storage.

``ganesha`` is the session's real nfs-ganesha server (``nfs_server``, see
tests/nfs_server.py: rpcbind unless one answers, ``ganesha.nfsd -F``, VFS backend,
NFSv3 and v4, a read-write and a read-only export of temporary directories), shared
with the other plugin suites; tests using it carry the ``ganesha`` marker. When
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
import subprocess
import threading
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest

from plugins.storage_nfs import mount
from plugins.storage_nfs.driver import NfsStorage

from .ganesha import Ganesha
from .helpers import qemu_io


def pytest_configure(config):
    config.addinivalue_line("markers", "ganesha: uses the real nfs-ganesha server (deselect with -m 'not ganesha')")


def pytest_collection_modifyitems(items):
    for item in items:
        if item.path.parent != Path(__file__).parent:
            continue
        params = getattr(getattr(item, "callspec", None), "params", {})
        if "ganesha" in item.fixturenames or params.get("backend") in ("libnfs", "mount"):
            item.add_marker(pytest.mark.ganesha)


def _skip_loudly(reason: str):
    warnings.warn(pytest.PytestWarning(f"storage_nfs: {reason}"))
    pytest.skip(reason)


@pytest.fixture(scope="session")
def ganesha(nfs_server):
    """The session's one NFS server (``nfs_server`` in tests/plugins/conftest.py, shared with
    the other suites: one rpcbind maps one NFS server), under this suite's name for it."""
    return nfs_server


@dataclass
class Backend:
    """One way of reaching storage: ``new(name)`` gives a fresh (url, directory behind it)."""

    name: str
    mode: str
    _root: Path
    _ganesha: Ganesha | None

    def new(self, prefix: str) -> tuple[str, Path]:
        name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        if self._ganesha is None:
            directory = self._root / name
            directory.mkdir()
            return f"file://{directory}", directory
        return self._ganesha.url(name), self._ganesha.mkdir(name)


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
