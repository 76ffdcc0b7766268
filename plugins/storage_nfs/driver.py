"""``NfsStorage``: NFS and local-directory primary storage and image store, with qemu-img.

One class plays both roles (``createStoragePool url=nfs://...`` and
``addImageStore provider=NFS`` land on it). How files are reached is chosen
per URL by ``access.open_access`` and reported in the details returned by
``connect_pool``/``connect_store``/``pool_stats``:

- ``{"access": "local", "mountpoint": "/dir"}`` for ``file://``, ``sharedmountpoint://``
  and plain paths;
- ``{"access": "mount", "mountpoint": "<mount_root>/<hash>", "server", "export"}``
  for ``nfs://`` when this kernel can mount NFS;
- ``{"access": "libnfs", "server", "export", "url_prefix": "nfs://server/export"}``
  for ``nfs://`` otherwise; ``mount_unavailable`` then says why no mount was made.

Hand these details back in ``PoolRef.details``: the driver keeps using the
access a pool was connected with, because volume paths depend on it.

Volume paths (``create_volume``'s result, ``VolumeSpec.path``): the absolute file
path for ``local``/``mount`` (the hypervisor opens a file; with ``mount`` the path
is under this machine's mount point, so a host that mounts elsewhere uses the
part after ``details["mountpoint"]``), the full ``nfs://server/export/<file>``
URL for ``libnfs`` (the hypervisor opens a network disk, ``<source protocol='nfs'>``).

Root volumes are qcow2 overlays on the pool's single copy of the template
(``templates/<uuid>.qcow2``, see ``layout``). Their backing file is named
relative (``templates/<uuid>.qcow2``) for ``local``/``mount`` pools, so any host
mounting the pool anywhere resolves it, and by its absolute ``nfs://`` URL for
``libnfs`` pools: QEMU 7.2's nfs driver resolves relative backing names
against the overlay's own file name instead of its directory.

Template ``install_path`` and snapshot backup names are paths relative to the
image store (``template/tmpl/0/<uuid>/<uuid>.qcow2``, ``snapshots/...``): the
core keeps the store's URL and details next to them (``TemplateRef.store_url``,
``store_details``), and the driver reaches the store from those.

Configuration (``[plugin.nfs]`` in strato.toml):

- ``access``: ``auto`` (default), ``mount`` or ``libnfs`` for ``nfs://`` URLs
- ``mount_root``: where exports are mounted (default ``<data dir>/mnt``)
- ``mount_options``: ``-o`` options for ``mount -t nfs`` (default none)
- ``qemu_img``: the qemu-img binary (default ``qemu-img``)
- ``nfs_timeout_ms``: libnfs RPC timeout (default 30000)
- ``download_timeout``: seconds to connect / between bytes (default 60)
- ``copy_timeout``: seconds a qemu-img copy may take (default 3600)
- ``max_template_bytes``: refuse larger downloads (default no limit)
- ``file_url_dirs``: directories ``file://`` template URLs must lie under (default any
  regular file the management server can read)
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import os
import posixpath
import secrets
import shutil
import threading
from pathlib import Path
from typing import Any, Callable, Iterator

from core import hookimpl
from core.drivers import (
    ImageStoreDriver,
    PoolInfo,
    PoolRef,
    PrimaryStorageDriver,
    SnapshotBackup,
    TemplateRef,
    VolumeSpec,
)
from core.errors import (
    InsufficientCapacityError,
    InternalError,
    InvalidParameterError,
    ResourceInUseError,
    ResourceUnavailableError,
    StratoError,
    UnsupportedError,
)

from . import layout, libnfs, urls
from .access import Access, MountAccess, open_access
from .download import fetch, parse_checksum
from .qemuimg import QEMU_FORMATS, QemuImg, QemuImgError

_NO_SPACE = {errno.ENOSPC, errno.EDQUOT}
#: the pool is there but cannot serve: unreachable, read-only, or not ours to write
_UNAVAILABLE = {errno.EIO, errno.ECONNREFUSED, errno.ECONNRESET, errno.ETIMEDOUT, errno.EPIPE,
                errno.ENOTCONN, errno.ESTALE, errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EACCES,
                errno.EPERM, errno.EROFS}
#: formats a pool can turn into a volume; ISO boots a blank root disk, OVA is VMware's
_POOL_FORMATS = set(QEMU_FORMATS)


@contextlib.contextmanager
def _errors(what: str) -> Iterator[None]:
    """Turn OSError/QemuImgError into the Strato error a caller can act on."""
    try:
        yield
    except StratoError:
        raise
    except OSError as exc:
        message = f"{what}: {exc.strerror or exc}"
        if exc.errno in _NO_SPACE:
            raise InsufficientCapacityError(message) from exc
        if exc.errno in _UNAVAILABLE:
            raise ResourceUnavailableError(message) from exc
        raise InternalError(message) from exc
    except QemuImgError as exc:
        if "No space left on device" in str(exc):
            raise InsufficientCapacityError(f"{what}: {exc}") from exc
        raise InternalError(f"{what}: {exc}") from exc


def _qemu_format(volume: VolumeSpec) -> str:
    layout.volume_file(volume.uuid, volume.format)  # raises for a format volumes cannot have
    return QEMU_FORMATS[volume.format.upper()]


#: bytes per read when copying files between stores
_CHUNK = 1 << 20


def _prune(access: Access, directory: str, stop_at: str, failure: BaseException) -> None:
    """Remove the empty directories a failed write made; a failure of that is noted on ``failure``."""
    try:
        access.prune_dirs(directory, stop_at=stop_at)
    except OSError as exc:
        failure.add_note(f"also could not remove {directory}: {exc}")


def _cleanup(access: Access, rel: str, failure: BaseException) -> None:
    """Remove a partial file after ``failure``; a failure of the removal itself is
    attached to the original error as a note instead of hiding it."""
    try:
        access.remove(rel)
    except OSError as exc:
        failure.add_note(f"also could not remove the partial file {access.locator(rel)}: {exc}")


class NfsStorage(PrimaryStorageDriver, ImageStoreDriver):
    """NFS / shared-directory storage for volumes (primary) and templates, ISOs and
    snapshot backups (image store). Thread-safe: one instance serves every job."""

    name = "nfs"
    url_schemes = urls.SCHEMES
    capabilities = {
        "thin_provisioning": True,
        "volume_resize": True,
        "snapshots": True,
        "template_extract": True,
        "template_formats": sorted(layout.EXTENSIONS),
        "volume_formats": sorted(layout.VOLUME_EXTENSIONS),
    }

    def __init__(self, config: dict[str, Any] | None = None):
        super().__init__(config)
        self.qemu = QemuImg(self.config.get("qemu_img", "qemu-img"))
        self._data_dir = Path(os.environ.get("STRATO_DATA_DIR") or Path.home() / ".strato")
        self._accesses: dict[str, Access] = {}
        self._lock = threading.Lock()
        self._copy_locks: dict[tuple[str, str], threading.Lock] = {}

    @hookimpl
    def strato_configure(self, settings) -> None:
        self._data_dir = Path(settings.data_dir)

    # -- settings -----------------------------------------------------------

    @property
    def mount_root(self) -> str:
        return str(self.config.get("mount_root") or self._data_dir / "mnt")

    def _setting(self, key: str, default: float) -> float:
        return float(self.config.get(key, default))

    # -- reaching pools and stores -----------------------------------------

    def _open(self, url: str, mode: str | None) -> Access:
        location = urls.parse(url)
        with _errors(f"storage {location.url}"):
            return open_access(location, mode=mode or self.config.get("access", "auto"),
                               mount_root=self.mount_root, mount_options=self.config.get("mount_options", ""),
                               timeout_ms=int(self._setting("nfs_timeout_ms", libnfs.DEFAULT_TIMEOUT_MS)))

    def _cache(self, access: Access) -> Access:
        """Keep ``access`` for its URL, or return the one another thread kept first
        (closing ``access``; a mount both made is the same mount)."""
        with self._lock:
            kept = self._accesses.setdefault(access.location.url, access)
        if kept is not access:
            access.close()
        return kept

    def _access(self, ref: PoolRef) -> Access:
        """The access of a connected pool/store; after a restart it is reopened
        (remounted) the way the pool was connected, as its details say."""
        location = urls.parse(ref.url)
        with self._lock:
            cached = self._accesses.get(location.url)
            if cached is not None and not cached.healthy():
                # a mount that went away: writing on would fill the empty mount point's disk
                del self._accesses[location.url]
                cached = None
        if cached is not None:
            return cached
        kind = (ref.details or {}).get("access")
        return self._cache(self._open(ref.url, kind if kind in ("mount", "libnfs") else None))

    def _connect(self, url: str, details: dict[str, Any]) -> PoolInfo:
        location = urls.parse(url)
        mode = (details or {}).get("access")
        with self._lock:
            cached = self._accesses.get(location.url)
        access = cached or self._open(url, mode if mode in ("auto", "mount", "libnfs") else None)
        try:
            with _errors(f"storage {location.url}"):
                self._probe(access)
                capacity, used = access.capacity()
        except BaseException as failure:
            if cached is None:
                access.close()
                if isinstance(access, MountAccess) and access.mounted_here:
                    try:
                        access.unmount()
                    except OSError as exc:
                        failure.add_note(f"also could not unmount {access.root}: {exc}")
            raise
        if cached is None:
            access = self._cache(access)
        return PoolInfo(capacity_bytes=capacity, used_bytes=used, details={**access.details(), **access.notes})

    def _probe(self, access: Access) -> None:
        """Write, read back and delete a small file, and have qemu-img open it through
        the same path a hypervisor will use: catches read-only exports, root squash
        and a QEMU without the nfs driver now rather than at the first volume."""
        need_nfs = access.kind == "libnfs"
        reason = self.qemu.unavailable_reason(need_nfs=need_nfs)
        if reason:
            raise ResourceUnavailableError(f"{access.location.url}: {reason}")
        probe = f".strato-probe-{secrets.token_hex(6)}"
        payload = b"\0" * 512
        try:
            with access.open_write(probe) as handle:
                handle.write(payload)
                handle.fsync()
            if access.size(probe) != len(payload):
                raise ResourceUnavailableError(f"{access.location.url}: a file written there reads back truncated")
            info = self.qemu.info(access.locator(probe), "raw")
            if info.virtual_size != len(payload):
                raise ResourceUnavailableError(f"{access.location.url}: qemu-img sees a different file there")
        except BaseException as failure:
            _cleanup(access, probe, failure)
            raise
        access.remove(probe)

    # -- primary storage ----------------------------------------------------

    def connect_pool(self, url: str, details: dict[str, Any]) -> PoolInfo:
        """Reach the pool (mounting it if that is the way), check it is writable and
        that qemu-img opens files on it, and read its capacity: ``statvfs`` for local
        and mounted pools, NFSv3 FSSTAT through libnfs otherwise (what the export's
        filesystem reports; ``used`` is capacity minus free). ``details`` may carry
        ``access`` to force the way. On failure nothing stays mounted or written."""
        return self._connect(url, details)

    def pool_stats(self, pool: PoolRef) -> PoolInfo:
        access = self._access(pool)
        with _errors(f"pool {pool.name}"):
            capacity, used = access.capacity()
        return PoolInfo(capacity_bytes=capacity, used_bytes=used, details={**access.details(), **access.notes})

    def disconnect_pool(self, pool: PoolRef) -> None:
        """Forget the pool: close its connection and unmount it if it was mounted.
        Raises ``ResourceInUseError`` when the mount is busy (it stays mounted)."""
        location = urls.parse(pool.url)
        with self._lock:
            access = self._accesses.pop(location.url, None)
        if access is None:
            return
        access.close()
        if isinstance(access, MountAccess):
            try:
                access.unmount()
            except OSError as exc:
                raise ResourceInUseError(f"pool {pool.name}: {exc}") from exc

    disconnect_store = disconnect_pool

    def _volume_rel(self, access: Access, volume: VolumeSpec) -> str:
        """The volume's file in the pool, named by its uuid and format as ``create_volume``
        named it. A ``volume.path`` naming another file (``templates/...``, something
        outside the pool) is refused rather than acted on; a path under a mount point
        this machine no longer uses still ends in the right name and is fine."""
        expected = layout.volume_file(volume.uuid, volume.format)
        if volume.path and (posixpath.basename(volume.path) != expected
                            or access.rel_of(volume.path) not in (None, expected)):
            raise InvalidParameterError(
                f"volume {volume.uuid}: path {volume.path} is not this volume's file in this pool ({expected})")
        return expected

    def create_volume(self, pool: PoolRef, volume: VolumeSpec, template: TemplateRef | None) -> str:
        """Create ``<uuid>.qcow2`` (or ``.raw``) in the pool and return its path (see the
        module docstring for what a path is per access).

        Without a template (or from an ISO): an empty image of ``volume.size_bytes``.
        From a disk template: the template is copied into the pool once
        (``templates/<uuid>.qcow2``), then a qcow2 overlay on it is made, of
        ``volume.size_bytes`` when larger than the template's virtual size (0 means
        the template's size; smaller raises ``InvalidParameterError``). A RAW root
        volume is a full copy instead. A volume whose file already exists (an earlier
        call the core did not record) is returned as it is.

        The volume is written under a temporary name and published at the end, so
        on failure no file of it remains; a template copy made on the way stays
        (it is complete and reused by the next volume).
        """
        fmt = volume.format.upper()
        rel = layout.volume_file(volume.uuid, fmt)
        access = self._access(pool)
        what = f"volume {volume.uuid} on pool {pool.name}"
        with _errors(what):
            if access.exists(rel):
                self.qemu.info(access.locator(rel), QEMU_FORMATS[fmt])
                return access.locator(rel)
            tmp = layout.part_name(rel)
            try:
                if template is None or template.format.upper() == "ISO":
                    if volume.size_bytes <= 0:
                        raise InvalidParameterError(f"{what}: a size is required for a volume without a template")
                    self.qemu.create(access.locator(tmp), QEMU_FORMATS[fmt], volume.size_bytes)
                else:
                    self._create_from_template(access, volume, template, fmt, tmp, what)
                access.publish(tmp, rel)
            except BaseException as failure:
                _cleanup(access, tmp, failure)
                raise
        return access.locator(rel)

    def _create_from_template(self, access: Access, volume: VolumeSpec, template: TemplateRef, fmt: str,
                              tmp: str, what: str) -> None:
        base = self.ensure_template(access, template)
        virtual = self.qemu.info(access.locator(base), "qcow2").virtual_size
        size = volume.size_bytes or virtual
        if size < virtual:
            raise InvalidParameterError(
                f"{what}: size {size} is smaller than template {template.uuid}'s {virtual} bytes")
        if fmt == "QCOW2":
            # volumes sit at the pool root, so the relative name is the cache path itself
            backing = access.locator(base) if access.kind == "libnfs" else base
            self.qemu.create(access.locator(tmp), "qcow2", size, backing=backing, backing_fmt="qcow2")
        else:
            self.qemu.convert(access.locator(base), "qcow2", access.locator(tmp), QEMU_FORMATS[fmt],
                              self._setting("copy_timeout", 3600))
            if size > virtual:
                self.qemu.resize(access.locator(tmp), QEMU_FORMATS[fmt], size)

    def ensure_template(self, pool_or_access: PoolRef | Access, template: TemplateRef) -> str:
        """Make sure the pool holds its copy of ``template`` (qcow2, under
        ``templates/``) and return its pool-relative path.

        Copied from ``template.install_path`` on the image store named by
        ``template.store_url``/``store_details`` the first time only: one copy at a
        time per pool and template in this process, and across processes the copy
        is published by hard link, which never replaces a copy another management
        server published first (the loser's copy is deleted). On failure the
        partial copy is removed.
        """
        access = pool_or_access if isinstance(pool_or_access, Access) else self._access(pool_or_access)
        fmt = template.format.upper()
        if fmt not in _POOL_FORMATS:
            raise UnsupportedError(f"template {template.uuid} is {fmt}, which cannot back a volume")
        rel = layout.pool_template(template.uuid)
        with _errors(f"copy of template {template.uuid} into {access.location.url}"):
            if access.exists(rel):
                return rel
            key = (access.location.url, template.uuid)
            with self._lock:
                lock = self._copy_locks.setdefault(key, threading.Lock())
            with lock:
                if access.exists(rel):
                    return rel
                source = self._template_source(template)
                access.makedirs(layout.TEMPLATE_CACHE_DIR)
                tmp = layout.part_name(rel)
                try:
                    self._copy_image(source, QEMU_FORMATS[fmt], access, tmp)
                    access.publish(tmp, rel)
                except BaseException as failure:
                    _cleanup(access, tmp, failure)
                    raise
        return rel

    def _copy_image(self, source: str, source_fmt: str, access: Access, tmp: str) -> None:
        """Copy an image into ``tmp`` as qcow2. A local qcow2 onto a local/mounted pool
        is copied as bytes (checked when it was registered, and the kernel's
        copy_file_range beats rewriting it); anything else goes through qemu-img
        convert, which reads and writes nfs:// URLs and converts other formats."""
        if source_fmt == "qcow2" and source.startswith("/") and access.kind != "libnfs":
            destination = access.locator(tmp)
            shutil.copyfile(source, destination)  # sendfile(2) on Linux: no copy through Python
            with open(destination, "rb+") as written:
                os.fsync(written.fileno())
            return
        self.qemu.convert(source, source_fmt, access.locator(tmp), "qcow2", self._setting("copy_timeout", 3600))

    def template_copies(self, pool: PoolRef) -> list[str]:
        """The uuids of the templates copied into the pool (``templates/<uuid>.qcow2``)."""
        access = self._access(pool)
        with _errors(f"template copies on pool {pool.name}"):
            try:
                names = access.listdir(layout.TEMPLATE_CACHE_DIR)
            except FileNotFoundError:
                return []
        return sorted(name[:-len(".qcow2")] for name in names
                      if name.endswith(".qcow2") and not name.startswith("."))

    def delete_template_copy(self, pool: PoolRef, template: TemplateRef) -> None:
        """Remove the pool's copy of ``template``. Idempotent. The caller makes sure
        no volume of the pool is backed by it any more."""
        access = self._access(pool)
        with _errors(f"template copy {template.uuid} on pool {pool.name}"):
            access.remove(layout.pool_template(template.uuid))

    def delete_volume(self, pool: PoolRef, volume: VolumeSpec) -> None:
        """Remove the volume's file. Idempotent: a missing file is success. With
        ``volume.path`` None (a creation that crashed before the core recorded it)
        the file is found from the uuid, and a temporary file such a creation left
        is removed too. Internal snapshots go with the file; backups on the image
        store stay."""
        access = self._access(pool)
        with _errors(f"volume {volume.uuid} on pool {pool.name}"):
            rel = self._volume_rel(access, volume)
            access.remove(rel)
            if volume.path is None:
                directory, name = posixpath.split(rel)
                prefix = f".{name}{layout.PART_MARK}"
                for entry in access.listdir(directory):
                    if entry.startswith(prefix):
                        access.remove(posixpath.join(directory, entry))

    def resize_volume(self, pool: PoolRef, volume: VolumeSpec, new_size_bytes: int) -> None:
        """Grow the volume's virtual size to ``new_size_bytes`` (qemu-img resize): for a
        volume no running VM has open (a running VM is grown by its hypervisor).
        Shrinking raises ``InvalidParameterError`` and changes nothing; the same size
        is a no-op. On failure the image keeps its old size."""
        access = self._access(pool)
        fmt = _qemu_format(volume)
        with _errors(f"resize volume {volume.uuid}"):
            locator = access.locator(self._volume_rel(access, volume))
            current = self.qemu.info(locator, fmt).virtual_size
            if new_size_bytes < current:
                raise InvalidParameterError(
                    f"volume {volume.uuid}: cannot shrink from {current} to {new_size_bytes} bytes; "
                    "shrinking would lose data")
            if new_size_bytes > current:
                self.qemu.resize(locator, fmt, new_size_bytes)

    # -- snapshots (helpers the snapshot commands will call) --------------------

    def snapshot_volume(self, pool: PoolRef, volume: VolumeSpec, name: str) -> None:
        """Take an internal qcow2 snapshot ``name`` of a volume no running VM has open."""
        self._internal_snapshot(pool, volume, "-c", name)

    def revert_volume_snapshot(self, pool: PoolRef, volume: VolumeSpec, name: str) -> None:
        """Return a volume (no running VM has it open) to its internal snapshot ``name``."""
        self._internal_snapshot(pool, volume, "-a", name)

    def delete_volume_snapshot(self, pool: PoolRef, volume: VolumeSpec, name: str) -> None:
        """Drop internal snapshot ``name``. Idempotent: an unknown name is success."""
        access = self._access(pool)
        locator = access.locator(self._volume_rel(access, volume))
        with _errors(f"snapshot {name} of volume {volume.uuid}"):
            if name in self.list_volume_snapshots(pool, volume):
                self.qemu.snapshot(locator, "-d", layout.component(name, "snapshot name"))

    def list_volume_snapshots(self, pool: PoolRef, volume: VolumeSpec) -> list[str]:
        """Names of the volume's internal snapshots."""
        access = self._access(pool)
        locator = access.locator(self._volume_rel(access, volume))
        with _errors(f"snapshots of volume {volume.uuid}"):
            info = self.qemu.info(locator, _qemu_format(volume))
        return [entry["name"] for entry in info.raw.get("snapshots", [])]

    def _internal_snapshot(self, pool: PoolRef, volume: VolumeSpec, action: str, name: str) -> None:
        if volume.format.upper() != "QCOW2":
            raise UnsupportedError(f"volume {volume.uuid} is {volume.format}; internal snapshots need QCOW2")
        access = self._access(pool)
        locator = access.locator(self._volume_rel(access, volume))
        with _errors(f"snapshot {name} of volume {volume.uuid}"):
            self.qemu.snapshot(locator, action, layout.component(name, "snapshot name"))

    def backup_snapshot(self, pool: PoolRef, volume: VolumeSpec, store: PoolRef, snapshot_uuid: str, *,
                        account: object = 0, internal_snapshot: str | None = None,
                        force_share: bool = False) -> str:
        """Copy the volume (its internal snapshot ``internal_snapshot`` when given, else
        its current state, flattened with its template) to the image store as
        ``snapshots/<account>/<volume uuid>/<snapshot uuid>.qcow2`` and return that
        store-relative path. ``force_share`` reads a volume a running VM holds
        (crash-consistent at best: prefer an internal snapshot). On failure no
        partial backup remains."""
        pool_access = self._access(pool)
        store_access = self._access(store)
        rel = layout.store_snapshot(volume.uuid, snapshot_uuid, account)
        source = pool_access.locator(self._volume_rel(pool_access, volume))
        with _errors(f"backup of volume {volume.uuid} to store {store.name}"):
            store_access.makedirs(posixpath.dirname(rel))
            tmp = layout.part_name(rel)
            try:
                self.qemu.convert(source, _qemu_format(volume), store_access.locator(tmp), "qcow2",
                                  self._setting("copy_timeout", 3600), snapshot=internal_snapshot,
                                  force_share=force_share)
                store_access.rename(tmp, rel)
            except BaseException as failure:
                _cleanup(store_access, tmp, failure)
                raise
        return rel

    def restore_snapshot(self, pool: PoolRef, volume: VolumeSpec, store: PoolRef, backup: str) -> str:
        """Replace the volume's contents with the backup ``backup`` (the store-relative
        path ``backup_snapshot`` returned), or make the volume's file from it when there
        is none yet (``createVolume`` from a snapshot); return the volume's path. The
        volume must not be open by a running VM. The result is a full copy, no longer
        backed by the template. On failure the volume is unchanged."""
        access = self._access(pool)
        store_access = self._access(store)
        fmt = _qemu_format(volume)
        rel_backup = layout.relative(backup, layout.STORE_SNAPSHOT_DIR, "snapshot backup")
        with _errors(f"revert volume {volume.uuid} from {backup}"):
            rel = self._volume_rel(access, volume)
            tmp = layout.part_name(rel)
            try:
                self.qemu.convert(store_access.locator(rel_backup), "qcow2", access.locator(tmp), fmt,
                                  self._setting("copy_timeout", 3600))
                # replacing is intended here: the volume is not in use, and its content changes
                access.rename(tmp, rel)
            except BaseException as failure:
                _cleanup(access, tmp, failure)
                raise
        return access.locator(rel)

    def backup_volume(self, pool: PoolRef, volume: VolumeSpec, store: PoolRef, snapshot_uuid: str, *,
                      account: object = 0, running: bool = False) -> SnapshotBackup:
        """The contract's backup (``backup_snapshot`` of the volume's current state, read
        with ``force_share`` when a VM runs it), with the backup's sizes."""
        rel = self.backup_snapshot(pool, volume, store, snapshot_uuid, account=account, force_share=running)
        store_access = self._access(store)
        with _errors(f"backup {rel} on store {store.name}"):
            physical = store_access.size(rel)
            virtual = self.qemu.info(store_access.locator(rel), "qcow2").virtual_size
        return SnapshotBackup(path=rel, physical_size_bytes=physical, virtual_size_bytes=virtual)

    def copy_volume(self, source: PoolRef, volume: VolumeSpec, destination: PoolRef) -> str:
        """Copy a volume no running VM has open to ``destination`` as a standalone image
        (its template flattened in) under the same name, and return its path there. The
        source is not touched. A leftover file of an earlier attempt the core never
        recorded is replaced. On failure no file of the copy remains."""
        source_access, target = self._access(source), self._access(destination)
        if source_access.location.url == target.location.url:
            raise InvalidParameterError(f"volume {volume.uuid} is already on pool {destination.name}")
        fmt = _qemu_format(volume)
        rel = layout.volume_file(volume.uuid, volume.format)
        with _errors(f"copy of volume {volume.uuid} to pool {destination.name}"):
            locator = source_access.locator(self._volume_rel(source_access, volume))
            tmp = layout.part_name(rel)
            try:
                self.qemu.convert(locator, fmt, target.locator(tmp), fmt, self._setting("copy_timeout", 3600))
                # no VM can hold the destination file yet: replacing a leftover is safe
                target.rename(tmp, rel)
            except BaseException as failure:
                _cleanup(target, tmp, failure)
                raise
        return target.locator(rel)

    def template_from_volume(self, pool: PoolRef, volume: VolumeSpec, store: PoolRef,
                             template: TemplateRef) -> TemplateRef:
        """Write a standalone qcow2 of a volume no running VM has open to the store as
        ``template/tmpl/0/<uuid>/<uuid>.qcow2``; returns the template with ``install_path``,
        ``size_bytes`` (virtual) and format QCOW2. On failure no partial file remains."""
        access = self._access(pool)
        with _errors(f"volume {volume.uuid} on pool {pool.name}"):
            source = access.locator(self._volume_rel(access, volume))
        return self._image_to_store(source, _qemu_format(volume), store, template)

    def template_from_snapshot(self, store: PoolRef, backup_path: str, template: TemplateRef) -> TemplateRef:
        """As ``template_from_volume``, from a snapshot backup on the same store."""
        rel = layout.relative(backup_path, layout.STORE_SNAPSHOT_DIR, "snapshot backup")
        return self._image_to_store(self._access(store).locator(rel), "qcow2", store, template)

    def _image_to_store(self, source: str, source_fmt: str, store: PoolRef, template: TemplateRef) -> TemplateRef:
        access = self._access(store)
        rel = layout.store_template(template.uuid, "QCOW2")
        directory = posixpath.dirname(rel)
        tmp = layout.part_name(rel)
        with _errors(f"template {template.uuid} on store {store.name}"):
            access.makedirs(directory)
            try:
                self.qemu.convert(source, source_fmt, access.locator(tmp), "qcow2", self._setting("copy_timeout", 3600))
                size = self.qemu.info(access.locator(tmp), "qcow2").virtual_size
                access.rename(tmp, rel)
            except BaseException as failure:
                _cleanup(access, tmp, failure)
                _prune(access, directory, layout.STORE_TEMPLATE_DIR, failure)
                raise
        return dataclasses.replace(template, install_path=rel, size_bytes=size, format="QCOW2")

    def copy_template(self, store: PoolRef, template: TemplateRef, progress: Callable[[int], object]) -> TemplateRef:
        """Copy the template's file byte for byte from the store named by
        ``template.store_url``/``store_details`` into ``store`` (any format: ISOs and OVAs
        too), calling ``progress(percent)``; returns it with the new ``install_path``. On
        failure no partial file (nor its empty directories) remains."""
        if not template.install_path or not template.store_url:
            raise InvalidParameterError(f"template {template.uuid} is not on an image store yet")
        source_rel = layout.relative(template.install_path, layout.STORE_TEMPLATE_DIR, "template install path")
        source = self._access(PoolRef(uuid="", name=template.store_url, url=template.store_url,
                                      details=dict(template.store_details or {})))
        target = self._access(store)
        if source.location.url == target.location.url:
            raise InvalidParameterError(f"template {template.uuid} is already on image store {store.name}")
        rel = layout.store_template(template.uuid, template.format)
        directory = posixpath.dirname(rel)
        tmp = layout.part_name(rel)
        with _errors(f"copy of template {template.uuid} to store {store.name}"):
            total = source.size(source_rel)
            target.makedirs(directory)
            try:
                copied = 0
                with source.open_read(source_rel) as reader, target.open_write(tmp) as writer:
                    while chunk := reader.read(_CHUNK):
                        writer.write(chunk)
                        copied += len(chunk)
                        progress(min(99, copied * 100 // max(total, 1)))
                    writer.fsync()
                if copied != total:
                    raise InternalError(f"template {template.uuid}: copied {copied} of {total} bytes")
                target.rename(tmp, rel)
            except BaseException as failure:
                _cleanup(target, tmp, failure)
                _prune(target, directory, layout.STORE_TEMPLATE_DIR, failure)
                raise
        progress(100)
        return dataclasses.replace(template, install_path=rel)

    def open_template(self, store: PoolRef, template: TemplateRef) -> tuple[int, Any]:
        """The template's file on ``store``: (size, a binary file open for reading)."""
        access = self._access(store)
        rel = layout.relative(template.install_path, layout.STORE_TEMPLATE_DIR, "template install path")
        with _errors(f"template {template.uuid} on store {store.name}"):
            return access.size(rel), access.open_read(rel)

    def delete_snapshot_backup(self, store: PoolRef, backup: str) -> None:
        """Remove a backup (its store-relative path) and its directories once empty. Idempotent."""
        access = self._access(store)
        rel = layout.relative(backup, layout.STORE_SNAPSHOT_DIR, "snapshot backup")
        with _errors(f"delete backup {backup}"):
            access.remove(rel)
            access.prune_dirs(posixpath.dirname(rel), stop_at=layout.STORE_SNAPSHOT_DIR)

    # -- image store --------------------------------------------------------

    def connect_store(self, url: str, details: dict[str, Any]) -> PoolInfo:
        """As ``connect_pool``, for an image store."""
        return self._connect(url, details)

    def register_template(self, store: PoolRef, template: TemplateRef,
                          progress: Callable[[int], object]) -> TemplateRef:
        """Download ``template.url`` (http, https, file) into the store as
        ``template/tmpl/0/<uuid>/<uuid>.<ext>``, calling ``progress(percent)`` (0 ..
        99 while bytes arrive, 100 once the file passed every check and has its
        final name).

        Checks: the checksum (CloudStack's syntax, see ``download``); for ISO the
        ISO 9660 signature, for OVA the tar signature; for disk formats qemu-img must
        find the declared format (a file qemu-img only sees as raw data is refused
        unless declared RAW, and RAW must be whole 512-byte sectors), with no backing
        file or external data file (a template must not point at other files).

        Returns the template with ``install_path`` (relative to the store) and
        ``size_bytes`` (the virtual size; an ISO's or OVA's file size). On any failure the partial file (and its empty directories)
        is removed and the error says why: ``InvalidParameterError`` for a bad URL,
        HTTP error, checksum or file, ``ResourceUnavailableError`` when the source
        or the store cannot be reached, ``InsufficientCapacityError`` when the store
        is full.
        """
        fmt = (template.format or "").upper()
        if fmt not in layout.EXTENSIONS:
            raise InvalidParameterError(
                f"template format {template.format!r} is not one of {', '.join(layout.EXTENSIONS)}")
        checksum = parse_checksum(template.checksum)
        if not template.url:
            raise InvalidParameterError(f"template {template.uuid}: a URL is required")
        access = self._access(store)
        rel = layout.store_template(template.uuid, fmt)
        directory = posixpath.dirname(rel)
        tmp = layout.part_name(rel)
        max_bytes = self.config.get("max_template_bytes")
        with _errors(f"template {template.uuid} on store {store.name}"):
            access.makedirs(directory)
            try:
                with access.open_write(tmp) as handle:
                    fetched = fetch(template.url, handle.write, progress, checksum,
                                    timeout=self._setting("download_timeout", 60),
                                    max_bytes=int(max_bytes) if max_bytes else None,
                                    file_dirs=self.config.get("file_url_dirs"))
                    handle.fsync()
                size = self._check_template(access, tmp, fmt, fetched.size, fetched.head, template)
                access.rename(tmp, rel)
            except BaseException as failure:
                _cleanup(access, tmp, failure)
                try:
                    access.prune_dirs(directory, stop_at=layout.STORE_TEMPLATE_DIR)
                except OSError as exc:
                    failure.add_note(f"also could not remove {directory}: {exc}")
                raise
        progress(100)
        return dataclasses.replace(template, install_path=rel, size_bytes=size)

    def _check_template(self, access: Access, tmp: str, fmt: str, size: int, head: bytes,
                        template: TemplateRef) -> int:
        """The template's virtual size, or ``InvalidParameterError`` saying why the
        downloaded file is not the declared kind of image."""
        name = f"template {template.uuid} ({template.url})"
        if size == 0:
            raise InvalidParameterError(f"{name}: the download is empty")
        if fmt == "ISO":
            if head[32769:32774] != b"CD001":
                raise InvalidParameterError(f"{name}: not an ISO 9660 image (no CD001 signature)")
            return size
        if fmt == "OVA":
            if head[257:262] != b"ustar":
                raise InvalidParameterError(f"{name}: not an OVA (no tar signature)")
            return size
        info = self.qemu.info(access.locator(tmp))
        expected = QEMU_FORMATS[fmt]
        if info.format != expected:
            seen = "raw data, no disk image" if info.format == "raw" else f"a {info.format} image"
            raise InvalidParameterError(f"{name}: declared {fmt} but qemu-img finds {seen}")
        if fmt == "RAW" and size % 512:
            raise InvalidParameterError(
                f"{name}: not a disk image: {size} bytes is not a whole number of 512-byte sectors")
        if info.backing_file:
            raise InvalidParameterError(f"{name}: the image has a backing file ({info.backing_file}); "
                                        "templates must be self-contained")
        if info.data_file:
            raise InvalidParameterError(f"{name}: the image has an external data file ({info.data_file})")
        return info.virtual_size

    def delete_template(self, store: PoolRef, template: TemplateRef) -> None:
        """Remove the template's file and its directories once empty. Idempotent.
        Pools' copies of it are not touched (see ``delete_template_copy``)."""
        access = self._access(store)
        if template.install_path:
            rel = layout.relative(template.install_path, layout.STORE_TEMPLATE_DIR, "template install path")
        else:
            rel = layout.store_template(template.uuid, template.format)
        with _errors(f"delete template {template.uuid}"):
            access.remove(rel)
            access.prune_dirs(posixpath.dirname(rel), stop_at=layout.STORE_TEMPLATE_DIR)

    # -- shared -------------------------------------------------------------

    def _template_source(self, template: TemplateRef) -> str:
        """What qemu-img on this machine opens to read the template on its image store."""
        if not template.install_path or not template.store_url:
            raise InvalidParameterError(
                f"template {template.uuid} is not on an image store yet (no install path or store)")
        rel = layout.relative(template.install_path, layout.STORE_TEMPLATE_DIR, "template install path")
        store = PoolRef(uuid="", name=template.store_url, url=template.store_url,
                        details=dict(template.store_details or {}))
        access = self._access(store)
        if not access.exists(rel):
            raise ResourceUnavailableError(
                f"template {template.uuid}: {rel} is missing from image store {template.store_url}")
        return access.locator(rel)

    def close(self) -> None:
        """Close libnfs connections. Mounts stay (the pools stay in use); ``disconnect_pool`` unmounts."""
        with self._lock:
            accesses, self._accesses = list(self._accesses.values()), {}
        for access in accesses:
            access.close()

