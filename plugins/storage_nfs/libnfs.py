"""A small ctypes binding to libnfs's synchronous API: files on an NFS export, no kernel client.

Why ctypes: the ``libnfs`` package on PyPI (1.0.post4, 2016) is a SWIG wrapper
that must be compiled against the headers of the libnfs it was generated for;
Debian 12 ships libnfs 4.0 (``libnfs13``, pulled in by ``libnfs-utils``), whose
synchronous calls are few and stable, so binding the dozen we need keeps the
plugin free of a build step. The signatures below are libnfs 4.0's
(``nfsc/libnfs.h``); ``LIBRARY`` names the ABI they were checked against.

A ``NfsClient`` is one mounted export over NFSv3 (the version QEMU's nfs block
driver speaks, so the driver and the hypervisors see the export the same way).
Paths are relative to the export root. Every call raises ``OSError`` with the
errno libnfs reports and libnfs's own message; calls on one client are
serialised by a lock because a libnfs context is not thread-safe.
"""

from __future__ import annotations

import ctypes
import errno as errno_codes
import os
import stat as stat_module
import threading
from typing import Iterator

#: the shared library and ABI these declarations match (libnfs 4.x)
LIBRARY = "libnfs.so.13"
NFS_V3 = 3
DEFAULT_TIMEOUT_MS = 30_000
#: how many times libnfs reconnects a dropped TCP connection before an operation fails
#: (its default, -1, retries for ever and would hang a worker on a dead server)
RECONNECT_RETRIES = 2


class _Stat64(ctypes.Structure):
    _fields_ = [(name, ctypes.c_uint64) for name in (
        "nfs_dev", "nfs_ino", "nfs_mode", "nfs_nlink", "nfs_uid", "nfs_gid", "nfs_rdev",
        "nfs_size", "nfs_blksize", "nfs_blocks", "nfs_atime", "nfs_mtime", "nfs_ctime",
        "nfs_atime_nsec", "nfs_mtime_nsec", "nfs_ctime_nsec", "nfs_used")]


class _StatVfs64(ctypes.Structure):
    _fields_ = [(name, ctypes.c_uint64) for name in (
        "f_bsize", "f_frsize", "f_blocks", "f_bfree", "f_bavail", "f_files", "f_ffree",
        "f_favail", "f_fsid", "f_flag", "f_namemax")]


class _DirEnt(ctypes.Structure):
    """The leading fields of ``struct nfsdirent``: only these are read, so the rest
    of the (longer) C struct need not be declared."""


_DirEnt._fields_ = [("next", ctypes.POINTER(_DirEnt)), ("name", ctypes.c_char_p),
                    ("inode", ctypes.c_uint64), ("type", ctypes.c_uint32), ("mode", ctypes.c_uint32),
                    ("size", ctypes.c_uint64)]

_lib: ctypes.CDLL | None = None
_lib_error: str | None = None
_lib_lock = threading.Lock()


def _declare(lib: ctypes.CDLL) -> None:
    vp, cp, i, u64 = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_uint64
    pvp = ctypes.POINTER(ctypes.c_void_p)
    signatures = {
        "nfs_init_context": (vp, []),
        "nfs_destroy_context": (None, [vp]),
        "nfs_get_error": (cp, [vp]),
        "nfs_set_version": (i, [vp, i]),
        "nfs_set_timeout": (None, [vp, i]),
        "nfs_set_autoreconnect": (None, [vp, i]),
        "nfs_mount": (i, [vp, cp, cp]),
        "nfs_umount": (i, [vp]),
        "nfs_stat64": (i, [vp, cp, ctypes.POINTER(_Stat64)]),
        "nfs_statvfs64": (i, [vp, cp, ctypes.POINTER(_StatVfs64)]),
        "nfs_mkdir": (i, [vp, cp]),
        "nfs_rmdir": (i, [vp, cp]),
        "nfs_unlink": (i, [vp, cp]),
        "nfs_rename": (i, [vp, cp, cp]),
        "nfs_link": (i, [vp, cp, cp]),
        "nfs_opendir": (i, [vp, cp, pvp]),
        "nfs_readdir": (ctypes.POINTER(_DirEnt), [vp, vp]),
        "nfs_closedir": (None, [vp, vp]),
        "nfs_create": (i, [vp, cp, i, i, pvp]),
        "nfs_open": (i, [vp, cp, i, pvp]),
        "nfs_close": (i, [vp, vp]),
        "nfs_fsync": (i, [vp, vp]),
        "nfs_pread": (i, [vp, vp, u64, u64, ctypes.c_void_p]),
        "nfs_pwrite": (i, [vp, vp, u64, u64, ctypes.c_void_p]),
    }
    for name, (restype, argtypes) in signatures.items():
        function = getattr(lib, name)
        function.restype = restype
        function.argtypes = argtypes


def load() -> ctypes.CDLL:
    """The loaded library. Raises ``OSError`` saying what is missing when it cannot load."""
    global _lib, _lib_error
    with _lib_lock:
        if _lib is None and _lib_error is None:
            try:
                lib = ctypes.CDLL(LIBRARY)
                _declare(lib)
                _lib = lib
            except (OSError, AttributeError) as exc:
                _lib_error = (f"cannot load {LIBRARY} ({exc}); install Debian's libnfs13 "
                              "(it comes with libnfs-utils)")
        if _lib is None:
            raise OSError(errno_codes.ENOSYS, _lib_error)
        return _lib


def unavailable_reason() -> str | None:
    """None when libnfs can be used, else why not."""
    try:
        load()
    except OSError as exc:
        return exc.strerror
    return None


class NfsClient:
    """One NFSv3 mount of ``server:/export`` made through libnfs.

    Construction mounts the export and raises ``OSError`` when the server does
    not answer or refuses the mount (nothing stays allocated then). ``close()``
    unmounts and frees the context; it never raises.
    """

    def __init__(self, server: str, export: str, timeout_ms: int = DEFAULT_TIMEOUT_MS):
        self.server = server
        self.export = export
        self._lib = load()
        self._lock = threading.Lock()
        self._ctx = self._lib.nfs_init_context()
        if not self._ctx:
            raise OSError(errno_codes.ENOMEM, "libnfs could not allocate a context")
        try:
            self._lib.nfs_set_version(self._ctx, NFS_V3)
            self._lib.nfs_set_timeout(self._ctx, int(timeout_ms))
            self._lib.nfs_set_autoreconnect(self._ctx, RECONNECT_RETRIES)
            self._check(self._lib.nfs_mount(self._ctx, server.encode(), export.encode()), "mount")
        except BaseException:
            self._lib.nfs_destroy_context(self._ctx)
            self._ctx = None
            raise

    def close(self) -> None:
        with self._lock:
            if self._ctx:
                # A failed UMNT only leaves an entry in the server's mount table (NFSv3
                # mounts are stateless), so its result is not an error worth raising.
                self._lib.nfs_umount(self._ctx)
                self._lib.nfs_destroy_context(self._ctx)
                self._ctx = None

    def __enter__(self) -> NfsClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- errors -------------------------------------------------------------

    def _check(self, ret: int, what: str, path: str | None = None) -> int:
        if ret >= 0:
            return ret
        code = -ret
        detail = self._lib.nfs_get_error(self._ctx) if self._ctx else None
        message = (detail or b"").decode(errors="replace") or os.strerror(code)
        if what == "mount" and "nfs_service failed" in message:
            # libnfs's words when nothing answers at all
            message += " (no NFS server or rpcbind answering there?)"
        target = f" /{path.lstrip('/')}" if path else ""
        # OSError(errno, ...) picks the matching subclass (FileNotFoundError, ...)
        raise OSError(code, f"{self.server}:{self.export}: NFS {what}{target}: {message}", path)

    def _call(self, what: str, path: str, function, *args) -> int:
        with self._lock:
            if not self._ctx:
                raise OSError(errno_codes.EBADF, f"NFS client for {self.server}:{self.export} is closed")
            return self._check(function(self._ctx, *args), what, path)

    @staticmethod
    def _p(path: str) -> bytes:
        return ("/" + path.lstrip("/")).encode()

    # -- metadata -----------------------------------------------------------

    def stat(self, path: str) -> os.stat_result:
        """Size, mode and times of ``path`` as an ``os.stat_result`` (fields libnfs has)."""
        st = _Stat64()
        self._call("stat", path, self._lib.nfs_stat64, self._p(path), ctypes.byref(st))
        return os.stat_result((st.nfs_mode, st.nfs_ino, st.nfs_dev, st.nfs_nlink, st.nfs_uid,
                               st.nfs_gid, st.nfs_size, st.nfs_atime, st.nfs_mtime, st.nfs_ctime))

    def statvfs(self, path: str = "") -> tuple[int, int, int]:
        """(total, free, available) bytes of the filesystem behind the export (NFSv3 FSSTAT)."""
        sv = _StatVfs64()
        self._call("statvfs", path or "/", self._lib.nfs_statvfs64, self._p(path), ctypes.byref(sv))
        unit = sv.f_frsize or sv.f_bsize
        return sv.f_blocks * unit, sv.f_bfree * unit, sv.f_bavail * unit

    def exists(self, path: str) -> bool:
        try:
            self.stat(path)
        except FileNotFoundError:
            return False
        return True

    def isdir(self, path: str) -> bool:
        try:
            return stat_module.S_ISDIR(self.stat(path).st_mode)
        except FileNotFoundError:
            return False

    def listdir(self, path: str) -> list[str]:
        handle = ctypes.c_void_p()
        with self._lock:
            self._check(self._lib.nfs_opendir(self._ctx, self._p(path), ctypes.byref(handle)), "opendir", path)
            try:
                names = []
                entry = self._lib.nfs_readdir(self._ctx, handle)
                while entry:
                    name = entry.contents.name.decode(errors="surrogateescape")
                    if name not in (".", ".."):
                        names.append(name)
                    entry = self._lib.nfs_readdir(self._ctx, handle)
            finally:
                self._lib.nfs_closedir(self._ctx, handle)
        return sorted(names)

    # -- namespace ----------------------------------------------------------

    def mkdir(self, path: str) -> None:
        self._call("mkdir", path, self._lib.nfs_mkdir, self._p(path))

    def makedirs(self, path: str) -> None:
        """``mkdir -p``: succeeds when the directory already exists (also when made concurrently)."""
        parts = [part for part in path.strip("/").split("/") if part]
        for depth in range(1, len(parts) + 1):
            sub = "/".join(parts[:depth])
            try:
                self.mkdir(sub)
            except FileExistsError:
                if not self.isdir(sub):
                    raise

    def rmdir(self, path: str) -> None:
        self._call("rmdir", path, self._lib.nfs_rmdir, self._p(path))

    def unlink(self, path: str) -> None:
        self._call("unlink", path, self._lib.nfs_unlink, self._p(path))

    def rename(self, src: str, dst: str) -> None:
        self._call("rename", src, self._lib.nfs_rename, self._p(src), self._p(dst))

    def link(self, src: str, dst: str) -> None:
        """Hard link; raises ``FileExistsError`` when ``dst`` exists (NFSv3 LINK never replaces)."""
        self._call("link", dst, self._lib.nfs_link, self._p(src), self._p(dst))

    # -- data ---------------------------------------------------------------

    def open(self, path: str, mode: str = "rb") -> NfsFile:
        """``rb`` opens an existing file; ``wb`` creates or truncates; ``xb`` creates and
        fails with ``FileExistsError`` when the file exists."""
        handle = ctypes.c_void_p()
        if mode == "rb":
            self._call("open", path, self._lib.nfs_open, self._p(path), os.O_RDONLY, ctypes.byref(handle))
        elif mode in ("wb", "xb"):
            flags = os.O_TRUNC if mode == "wb" else os.O_EXCL
            self._call("create", path, self._lib.nfs_create, self._p(path), flags, 0o644, ctypes.byref(handle))
        else:
            raise ValueError(f"unsupported mode {mode!r}")
        return NfsFile(self, path, handle)

    def iter_read(self, path: str, chunk: int = 1 << 20) -> Iterator[bytes]:
        with self.open(path, "rb") as handle:
            while data := handle.read(chunk):
                yield data


class NfsFile:
    """An open file on a ``NfsClient``: sequential ``read``/``write``, ``fsync``, ``close``."""

    def __init__(self, client: NfsClient, path: str, handle: ctypes.c_void_p):
        self._client = client
        self._handle = handle
        self.path = path
        self._offset = 0

    def write(self, data: bytes) -> int:
        view = memoryview(data)
        while view:
            buffer = (ctypes.c_char * len(view)).from_buffer_copy(view)
            written = self._client._call("write", self.path, self._client._lib.nfs_pwrite, self._handle,
                                         self._offset, len(view), buffer)
            if written == 0:
                raise OSError(errno_codes.EIO, f"NFS write on {self.path} made no progress", self.path)
            self._offset += written
            view = view[written:]
        return len(data)

    def read(self, size: int = 1 << 20) -> bytes:
        buffer = ctypes.create_string_buffer(size)
        count = self._client._call("read", self.path, self._client._lib.nfs_pread, self._handle,
                                   self._offset, size, buffer)
        self._offset += count
        return buffer.raw[:count]

    def fsync(self) -> None:
        self._client._call("fsync", self.path, self._client._lib.nfs_fsync, self._handle)

    def close(self) -> None:
        if self._handle:
            handle, self._handle = self._handle, None
            self._client._call("close", self.path, self._client._lib.nfs_close, handle)

    def __enter__(self) -> NfsFile:
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is None:
            self.close()
        else:
            # Already failing: closing is still needed to free the handle, but its own
            # error must not hide the one being raised.
            try:
                self.close()
            except OSError:
                pass
