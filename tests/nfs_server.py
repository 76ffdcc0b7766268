"""One real NFS server for the whole test session: nfs-ganesha in the foreground, in userspace.

``start_server(base)`` runs ``rpcbind`` (unless one already answers on 127.0.0.1)
and ``ganesha.nfsd -F`` with the VFS backend, NFSv3 and v4 over TCP on
127.0.0.1, exporting ``base/export`` read-write as ``/strato`` and
``base/export-ro`` read-only as ``/strato-ro``; it returns once ``nfs-ls``
lists the export. It raises ``GaneshaUnavailable`` with the reason when a piece
is missing or the server does not come up, having stopped what it started.
``Ganesha.add_export(name, directory)`` exports one more directory (as ``/<name>``)
while the server runs (ganesha re-reads its exports on SIGHUP); ``Ganesha.shutdown()``
stops both processes.

One machine has one rpcbind, and NFSv3 clients (libnfs, QEMU) find the NFS
server through it, so two servers at once would steal each other's
registrations: every suite of a test session uses the one server of the
``nfs_server`` fixture (tests/plugins/conftest.py), and ``start_server`` holds an
exclusive lock until shutdown (a bound abstract Unix socket, ``LOCK_NAME``: no file
to clean up, released if the process dies), so a second test session on the
machine waits for it (up to ``LOCK_WAIT`` seconds). It also waits while any other
NFS server is registered.

(This module was ``tests/plugins/storage_nfs/ganesha.py``, which still re-exports it.)
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

from plugins.storage_nfs import libnfs
from plugins.storage_nfs.libnfs import NfsClient

PSEUDO = "/strato"
LOCK_NAME = "\0strato-test-nfs-ganesha"
LOCK_WAIT = 600

_EXPORT = """\
EXPORT {{
  Export_Id = {id};
  Path = {path};
  Pseudo = {pseudo};
  Access_Type = {access};
  # the driver and QEMU run as root: their files must stay root's
  Squash = No_Root_Squash;
  Protocols = 3, 4;
  Transports = TCP;
  SecType = sys;
  FSAL {{ Name = VFS; }}
}}
"""

_CONF = """\
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
LOG {{ Default_Log_Level = WARN; }}
"""


class GaneshaUnavailable(Exception):
    """The server cannot run here; the message says why."""


def _free_port(preferred: int | None = None) -> int:
    for candidate in ([preferred] if preferred else []) + [0]:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", candidate))
            except OSError:
                continue
            return probe.getsockname()[1]
    raise GaneshaUnavailable("no free TCP port on 127.0.0.1")


def _rpcbind_answers() -> bool:
    return subprocess.run(["rpcinfo", "-p", "127.0.0.1"], capture_output=True, timeout=10).returncode == 0


def _nfs_registered() -> bool:
    """True when some NFS server (program 100003) is registered with rpcbind."""
    done = subprocess.run(["rpcinfo", "-p", "127.0.0.1"], capture_output=True, text=True, timeout=10)
    return done.returncode == 0 and any(line.split()[:1] == ["100003"] for line in done.stdout.splitlines())


def _stop(process: subprocess.Popen, timeout: float = 10) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)


def unavailable_reason() -> str | None:
    missing = [tool for tool in ("ganesha.nfsd", "rpcbind", "rpcinfo", "nfs-ls") if not shutil.which(tool)]
    if missing:
        return (f"cannot run an NFS server: {', '.join(missing)} not installed "
                "(scripts/apt/storage.txt; run scripts/install-system.sh)")
    if not list(Path("/usr/lib").glob("*/ganesha/libfsalvfs.so")):
        return "nfs-ganesha's VFS backend (nfs-ganesha-vfs) is not installed"
    return libnfs.unavailable_reason()


class Ganesha:
    """A running ganesha.nfsd; ``stop()``/``start()`` let a test take the server away."""

    server = "127.0.0.1"
    pseudo = PSEUDO

    def __init__(self, base: Path):
        self.base = base
        #: the directory exported read-write (a test may look at the files behind the server)
        self.export_dir = base / "export"
        self.conf = base / "ganesha.conf"
        self.log = base / "ganesha.log"
        self.process: subprocess.Popen | None = None
        self.rpcbind: subprocess.Popen | None = None
        self._lock: socket.socket | None = None
        #: the EXPORT blocks of ganesha.conf, and the NFS port it serves on (set by start_server)
        self.exports: list[str] = []
        self.nfs_port: int | None = None
        self._mnt_port: int | None = None
        self._next_export_id = 100
        self._conf_lock = threading.Lock()

    def url(self, sub: str) -> str:
        return f"nfs://{self.server}{self.pseudo}/{sub}"

    @property
    def read_only_url(self) -> str:
        return f"nfs://{self.server}{self.pseudo}-ro"

    def mkdir(self, name: str) -> Path:
        """Make a directory at the export's root through NFS and return where it is on
        disk. Through NFS, not on disk: ganesha caches directory contents, and a name
        added (or removed) behind its back may stay unknown (or turn NFS3ERR_STALE)
        until its cache expires."""
        with NfsClient(self.server, self.pseudo, timeout_ms=10_000) as nfs:
            nfs.mkdir(name)
        return self.export_dir / name

    def add_export(self, name: str, directory: Path, access: str = "RW", timeout: float = 30) -> str:
        """Export ``directory`` as ``/<name>`` (root not squashed: QEMU and the drivers run as
        root) while the server runs, and return its ``nfs://`` URL once ``nfs-ls`` lists it.
        Raises ``GaneshaUnavailable`` (the log's tail) when ganesha does not take it."""
        if not name or "/" in name or name in (PSEUDO.strip("/"), f"{PSEUDO.strip('/')}-ro"):
            raise ValueError(f"export name {name!r}: one path component, not the server's own")
        with self._conf_lock:
            export_id, self._next_export_id = self._next_export_id, self._next_export_id + 1
            self.exports.append(_EXPORT.format(id=export_id, path=directory, pseudo=f"/{name}", access=access))
            self._write_conf()
            if self.process is not None:
                self.process.send_signal(signal.SIGHUP)  # ganesha re-reads its exports
        url = f"nfs://{self.server}/{name}"
        deadline = time.monotonic() + timeout
        while True:
            done = subprocess.run(["nfs-ls", url], capture_output=True, text=True, timeout=10)
            if done.returncode == 0:
                return url
            if time.monotonic() > deadline:
                tail = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else "(no log)"
                raise GaneshaUnavailable(f"nfs-ganesha did not export {url}: {done.stderr.strip()}; log: {tail}")
            time.sleep(0.2)

    def registered_here(self) -> bool:
        """rpcbind still sends NFS clients to this server (another machine-wide NFS server,
        started outside this session's lock, could register itself over it)."""
        done = subprocess.run(["rpcinfo", "-p", "127.0.0.1"], capture_output=True, text=True, timeout=10)
        return any(line.split()[0] == "100003" and line.split()[3] == str(self.nfs_port)
                   for line in done.stdout.splitlines() if len(line.split()) == 5)

    def _write_conf(self) -> None:
        self.conf.write_text(_CONF.format(nfs_port=self.nfs_port, mnt_port=self._mnt_port,
                                          recovery=self.base / "recovery") + "".join(self.exports))

    def start(self, timeout: float = 30) -> None:
        """Start ganesha and wait until ``nfs-ls`` lists the export; raises
        ``GaneshaUnavailable`` (with the log's tail) after stopping it when it does not."""
        self.process = subprocess.Popen(
            ["ganesha.nfsd", "-F", "-f", str(self.conf), "-L", str(self.log), "-p", str(self.base / "ganesha.pid")],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        url = f"nfs://{self.server}{self.pseudo}"
        while True:
            done = subprocess.run(["nfs-ls", url], capture_output=True, text=True, timeout=10)
            if done.returncode == 0:
                return
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                tail = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else "(no log)"
                raise GaneshaUnavailable(f"nfs-ganesha did not serve {url}: {done.stderr.strip()}; log: {tail}")
            time.sleep(0.2)

    def stop(self) -> None:
        if self.process is not None:
            _stop(self.process)
            self.process = None

    def shutdown(self) -> None:
        self.stop()
        if self.rpcbind is not None:
            _stop(self.rpcbind)
            self.rpcbind = None
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def _acquire(self) -> None:
        deadline = time.monotonic() + LOCK_WAIT
        while True:
            lock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                lock.bind(LOCK_NAME)
            except OSError:
                lock.close()
                if time.monotonic() > deadline:
                    raise GaneshaUnavailable(
                        f"another test session has run its NFS server for over {LOCK_WAIT} s") from None
                time.sleep(0.5)
                continue
            self._lock = lock
            return


def start_server(base: Path) -> Ganesha:
    reason = unavailable_reason()
    if reason:
        raise GaneshaUnavailable(reason)
    server = Ganesha(base)
    for directory in (server.export_dir, base / "export-ro", base / "recovery"):
        directory.mkdir(parents=True)
    server.exports = [_EXPORT.format(id=77, path=server.export_dir, pseudo=PSEUDO, access="RW"),
                      _EXPORT.format(id=78, path=base / "export-ro", pseudo=f"{PSEUDO}-ro", access="RO")]
    try:
        server._acquire()
        deadline = time.monotonic() + LOCK_WAIT
        while _nfs_registered():
            if time.monotonic() > deadline:
                raise GaneshaUnavailable(f"another NFS server stayed registered with rpcbind for {LOCK_WAIT} s")
            time.sleep(1)
        if not _rpcbind_answers():
            # -f: stay in the foreground, so we own (and stop) the process
            with open(base / "rpcbind.log", "wb") as log:
                server.rpcbind = subprocess.Popen(["rpcbind", "-f", "-w"], stdout=log, stderr=subprocess.STDOUT,
                                                  start_new_session=True)
            deadline = time.monotonic() + 10
            while not _rpcbind_answers():
                if server.rpcbind.poll() is not None or time.monotonic() > deadline:
                    raise GaneshaUnavailable(
                        f"rpcbind did not start: {(base / 'rpcbind.log').read_text(errors='replace')}")
                time.sleep(0.1)
        # ports are chosen only now: a server this one waited for may have held them
        server.nfs_port, server._mnt_port = _free_port(2049), _free_port()
        server._write_conf()
        server.start()
    except BaseException:
        server.shutdown()
        raise
    return server
