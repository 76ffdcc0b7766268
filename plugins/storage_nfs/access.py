"""How the plugin reaches the files of a pool or store: one small interface, three ways.

- ``local``: a directory this machine sees (``file://``, ``sharedmountpoint://``).
- ``mount``: an ``nfs://`` export mounted by the kernel under ``<mount_root>/<hash of
  the URL>``; once mounted it is a local directory.
- ``libnfs``: an ``nfs://`` export reached in userspace (libnfs through ctypes for
  file operations, QEMU's nfs block driver for images), for kernels without an
  NFS client.

Paths handed to an ``Access`` are relative to the pool/store root, made by
``layout``. ``locator(rel)`` is what QEMU (qemu-img here, the hypervisor later)
opens: an absolute path for ``local``/``mount``, ``nfs://server/export/rel``
for ``libnfs``. Every method raises ``OSError`` (the subclass for its errno);
the driver turns those into Strato errors.

``open_access()`` chooses the way: for ``nfs://`` the kernel mount when this
kernel can mount NFS, else libnfs (``mode`` forces one). The choice and the
reason a mount was not used go into ``details()``, which the driver returns
in the pool details so hypervisor plugins pick a file path or a network disk.
"""

from __future__ import annotations

import abc
import errno
import hashlib
import os
import posixpath
import threading
from pathlib import Path
from typing import Any, BinaryIO

from core.errors import InvalidParameterError, ResourceUnavailableError

from . import libnfs, mount
from .urls import Location

#: errnos where a hard link cannot be made but a rename can (filesystems without links)
_NO_LINK = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK}
#: errnos after which a libnfs context is dropped so the next call reconnects
_CONNECTION_LOST = {errno.EIO, errno.ECONNREFUSED, errno.ECONNRESET, errno.ETIMEDOUT, errno.EPIPE,
                    errno.ENOTCONN, errno.ESTALE}

MODES = ("auto", "mount", "libnfs")


class Access(abc.ABC):
    """Files under one root. Thread-safe; ``close()`` never raises."""

    #: "local", "mount" or "libnfs"
    kind: str

    def __init__(self, location: Location):
        self.location = location
        #: how the access was chosen, for the pool details (``mount_unavailable``: why not mounted)
        self.notes: dict[str, Any] = {}

    # -- what the core and the hypervisor plugins are told ---------------------

    @abc.abstractmethod
    def details(self) -> dict[str, Any]:
        """Pool details: ``access`` plus ``mountpoint`` (local, mount) or ``server``,
        ``export`` and ``url_prefix`` (libnfs)."""

    @abc.abstractmethod
    def locator(self, rel: str) -> str:
        """The absolute path or ``nfs://`` URL of ``rel`` that QEMU opens."""

    def _prefixes(self) -> list[str]:
        return [self.location.url] if self.location.kind == "nfs" else []

    def rel_of(self, locator: str) -> str | None:
        """The root-relative path of ``locator`` (a ``locator()`` name, or for NFS the
        ``nfs://`` URL whichever the access) when it lies under this root, else None."""
        for prefix in self._prefixes():
            if locator.startswith(prefix.rstrip("/") + "/"):
                rel = locator[len(prefix.rstrip("/")) + 1:]
                if rel and not any(part in ("..", ".") for part in rel.split("/")):
                    return rel
        return None

    # -- capacity and files --------------------------------------------------

    @abc.abstractmethod
    def capacity(self) -> tuple[int, int]:
        """(capacity, used) bytes of the filesystem behind the root."""

    @abc.abstractmethod
    def size(self, rel: str) -> int:
        """The file's size in bytes; ``FileNotFoundError`` when missing."""

    def exists(self, rel: str) -> bool:
        try:
            self.size(rel)
        except FileNotFoundError:
            return False
        return True

    @abc.abstractmethod
    def listdir(self, rel: str) -> list[str]:
        ...

    @abc.abstractmethod
    def makedirs(self, rel: str) -> None:
        """``mkdir -p``; fine when the directory exists."""

    @abc.abstractmethod
    def _unlink(self, rel: str) -> None:
        ...

    @abc.abstractmethod
    def _rmdir(self, rel: str) -> None:
        ...

    @abc.abstractmethod
    def _link(self, src: str, dst: str) -> None:
        ...

    @abc.abstractmethod
    def rename(self, src: str, dst: str) -> None:
        """Atomic rename within the root; replaces ``dst``."""

    @abc.abstractmethod
    def open_write(self, rel: str) -> BinaryIO:
        """A new file opened for writing (``write``, ``fsync``, ``close``, usable as a
        context manager); ``FileExistsError`` when it exists."""

    @abc.abstractmethod
    def open_read(self, rel: str) -> BinaryIO:
        """An existing file opened for sequential ``read(size)`` (``b""`` at the end) and
        ``close``, usable as a context manager; ``FileNotFoundError`` when missing."""

    def healthy(self) -> bool:
        """False when the access can no longer be used as it is (a mount that vanished)."""
        return True

    def close(self) -> None:
        """Release connections (and, for mounts, nothing: see ``MountAccess.unmount``)."""

    # -- built on the primitives ---------------------------------------------

    def remove(self, rel: str) -> bool:
        """Delete a file; True if it existed. A missing file is success (idempotent)."""
        try:
            self._unlink(rel)
        except FileNotFoundError:
            return False
        return True

    def prune_dirs(self, rel_dir: str, stop_at: str = "") -> None:
        """Remove ``rel_dir`` and its parents up to (not including) ``stop_at`` while they
        are empty. A directory that is not empty, or already gone, ends the walk."""
        current = rel_dir.strip("/")
        stop = stop_at.strip("/")
        while current and current != stop:
            try:
                self._rmdir(current)
            except FileNotFoundError:
                pass
            except OSError as exc:
                if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
                    return
                raise
            current = posixpath.dirname(current)

    def publish(self, tmp: str, final: str) -> bool:
        """Give the complete file ``tmp`` its ``final`` name without ever replacing an
        existing ``final`` (a file a running VM may hold open: replacing it under an
        NFS client makes its handle stale). True when ``tmp`` became ``final``; False
        when ``final`` already existed. ``tmp`` is gone either way.

        Uses a hard link; on a filesystem without links it falls back to a rename
        after an existence check, which two racing publishers could both pass (the
        second file replaces the first; their contents are the same by construction).
        """
        try:
            self._link(tmp, final)
        except FileExistsError:
            self.remove(tmp)
            return False
        except OSError as exc:
            if exc.errno not in _NO_LINK:
                raise
            if self.exists(final):
                self.remove(tmp)
                return False
            self.rename(tmp, final)
            return True
        self.remove(tmp)
        return True


class LocalAccess(Access):
    """A directory this machine sees."""

    kind = "local"

    def __init__(self, location: Location, root: str):
        super().__init__(location)
        self.root = root

    def details(self) -> dict[str, Any]:
        return {"access": self.kind, "mountpoint": self.root}

    def _prefixes(self) -> list[str]:
        return [self.root, *super()._prefixes()]

    def _abs(self, rel: str) -> str:
        return os.path.join(self.root, rel.lstrip("/")) if rel else self.root

    def locator(self, rel: str) -> str:
        return self._abs(rel)

    def capacity(self) -> tuple[int, int]:
        st = os.statvfs(self.root)
        total = st.f_blocks * st.f_frsize
        return total, total - st.f_bfree * st.f_frsize

    def size(self, rel: str) -> int:
        return os.stat(self._abs(rel)).st_size

    def listdir(self, rel: str) -> list[str]:
        return sorted(os.listdir(self._abs(rel)))

    def makedirs(self, rel: str) -> None:
        os.makedirs(self._abs(rel), exist_ok=True)

    def _unlink(self, rel: str) -> None:
        os.unlink(self._abs(rel))

    def _rmdir(self, rel: str) -> None:
        os.rmdir(self._abs(rel))

    def _link(self, src: str, dst: str) -> None:
        os.link(self._abs(src), self._abs(dst))

    def rename(self, src: str, dst: str) -> None:
        os.replace(self._abs(src), self._abs(dst))

    def open_write(self, rel: str) -> BinaryIO:
        return _SyncingFile(open(self._abs(rel), "xb"))

    def open_read(self, rel: str) -> BinaryIO:
        return open(self._abs(rel), "rb")


class _SyncingFile:
    """A local file with the same ``write``/``fsync``/``close`` as ``libnfs.NfsFile``."""

    def __init__(self, handle: BinaryIO):
        self._handle = handle

    def write(self, data: bytes) -> int:
        return self._handle.write(data)

    def fsync(self) -> None:
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def close(self) -> None:
        self._handle.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class MountAccess(LocalAccess):
    """An NFS export the kernel mounted on ``mountpoint``."""

    kind = "mount"

    def __init__(self, location: Location, root: str, mounted_here: bool):
        super().__init__(location, root)
        #: True when this access made the mount (so a failed connect undoes it)
        self.mounted_here = mounted_here

    def details(self) -> dict[str, Any]:
        return {"access": self.kind, "mountpoint": self.root, "server": self.location.server,
                "export": self.location.export}

    def healthy(self) -> bool:
        return mount.is_mounted(self.root)

    def capacity(self) -> tuple[int, int]:
        if not mount.is_mounted(self.root):
            # statvfs of the bare mount point would report this machine's own disk
            raise OSError(errno.ENOTCONN, f"{self.location.url} is no longer mounted on {self.root}", self.root)
        return super().capacity()

    def unmount(self) -> None:
        """Unmount and remove the mount point. Raises ``OSError`` when it is busy."""
        if mount.is_mounted(self.root):
            try:
                mount.umount(self.root)
            except mount.MountError as exc:
                raise OSError(errno.EBUSY, str(exc), self.root) from exc
        try:
            os.rmdir(self.root)
        except FileNotFoundError:
            pass


class LibnfsAccess(Access):
    """An NFS export reached through libnfs; images through QEMU's nfs:// driver.

    The libnfs connection is made on first use and dropped after an error that
    means the connection is gone, so the next call reconnects (the failing call
    itself still raises: retrying a rename or a create blindly is not safe).
    """

    kind = "libnfs"

    def __init__(self, location: Location, timeout_ms: int = libnfs.DEFAULT_TIMEOUT_MS,
                 client: libnfs.NfsClient | None = None):
        super().__init__(location)
        self.timeout_ms = timeout_ms
        self._client = client
        self._lock = threading.Lock()

    def details(self) -> dict[str, Any]:
        return {"access": self.kind, "server": self.location.server, "export": self.location.export,
                "url_prefix": self.location.url}

    def locator(self, rel: str) -> str:
        return f"{self.location.url}/{rel.lstrip('/')}" if rel else self.location.url

    def _nfs(self) -> libnfs.NfsClient:
        with self._lock:
            if self._client is None:
                self._client = libnfs.NfsClient(self.location.server, self.location.export, self.timeout_ms)
            return self._client

    def _do(self, method: str, *args):
        client = self._nfs()
        try:
            return getattr(client, method)(*args)
        except OSError as exc:
            if exc.errno in _CONNECTION_LOST:
                with self._lock:
                    if self._client is client:
                        self._client = None
                client.close()
            raise

    def capacity(self) -> tuple[int, int]:
        total, free, _available = self._do("statvfs", "")
        return total, total - free

    def size(self, rel: str) -> int:
        return self._do("stat", rel).st_size

    def listdir(self, rel: str) -> list[str]:
        return self._do("listdir", rel)

    def makedirs(self, rel: str) -> None:
        self._do("makedirs", rel)

    def _unlink(self, rel: str) -> None:
        self._do("unlink", rel)

    def _rmdir(self, rel: str) -> None:
        self._do("rmdir", rel)

    def _link(self, src: str, dst: str) -> None:
        self._do("link", src, dst)

    def rename(self, src: str, dst: str) -> None:
        self._do("rename", src, dst)

    def open_write(self, rel: str) -> BinaryIO:
        return self._do("open", rel, "xb")

    def open_read(self, rel: str) -> BinaryIO:
        return self._do("open", rel, "rb")

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()


def mountpoint_for(mount_root: str, location: Location) -> str:
    """Where the kernel mounts ``location``: stable per URL, so a restart finds its mounts."""
    digest = hashlib.sha256(location.url.encode()).hexdigest()[:16]
    return os.path.join(mount_root, digest)


def open_access(location: Location, *, mode: str = "auto", mount_root: str, mount_options: str = "",
                timeout_ms: int = libnfs.DEFAULT_TIMEOUT_MS) -> Access:
    """Reach ``location`` and return its access; for an NFS location reached through
    libnfs in ``auto`` mode, ``access.notes["mount_unavailable"]`` says why the kernel
    mount was not used.

    ``mode`` applies to NFS locations: ``auto`` (mount if this kernel can, else
    libnfs), ``mount`` or ``libnfs``. Raises ``ResourceUnavailableError`` with the
    reasons when no way works and ``InvalidParameterError`` for a bad mode or a
    local path that is no directory. Leaves no mount point behind on failure.
    """
    if mode not in MODES:
        raise InvalidParameterError(f"storage access {mode!r} is not one of {', '.join(MODES)}")
    if location.kind == "local":
        root = location.path
        if not os.path.isdir(root):
            raise ResourceUnavailableError(f"{location.url}: {root} is not an existing directory")
        return LocalAccess(location, root)

    notes: dict[str, Any] = {}
    if mode in ("auto", "mount"):
        reason = mount.unavailable_reason()
        if reason is None:
            try:
                return _mount(location, mount_root, mount_options)
            except mount.MountError as exc:
                reason = str(exc)
        if mode == "mount":
            raise ResourceUnavailableError(f"{location.url}: cannot mount: {reason}")
        notes["mount_unavailable"] = reason

    lib_reason = libnfs.unavailable_reason()
    if lib_reason is not None:
        raise ResourceUnavailableError(
            f"{location.url}: no way to reach NFS here: {notes.get('mount_unavailable', 'mount not tried')}; "
            f"{lib_reason}")
    try:
        client = libnfs.NfsClient(location.server, location.export, timeout_ms)
    except OSError as exc:
        raise ResourceUnavailableError(f"{location.url}: {exc.strerror}") from exc
    access = LibnfsAccess(location, timeout_ms, client)
    access.notes = notes
    return access


def _mount(location: Location, mount_root: str, options: str) -> MountAccess:
    mountpoint = mountpoint_for(mount_root, location)
    created = not os.path.isdir(mountpoint)
    Path(mountpoint).mkdir(parents=True, exist_ok=True)
    if mount.is_mounted(mountpoint):
        return MountAccess(location, mountpoint, mounted_here=False)
    try:
        mount.mount(location.server, location.export, mountpoint, options)
    except mount.MountError:
        if created:
            os.rmdir(mountpoint)
        raise
    return MountAccess(location, mountpoint, mounted_here=True)
