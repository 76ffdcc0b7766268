"""Simulated primary storage and image store: capacity and files are bookkeeping only.

Pools and stores are added with ``sim://<name>[?capacity=<GiB>]`` (default 1024 GiB).

What a real driver would write is recorded in the simulator's state file, so tests can
see what exists: volumes (``sim_volume``, keyed by path; a path names its pool,
``<pool>/<volume uuid>.qcow2``), templates and snapshot backups on stores
(``sim_store_file``, keyed by store and path). Operations on something missing fail as a
real driver would (534), so the core's bookkeeping is checked too.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlparse

from core import (
    ImageStoreDriver,
    InvalidParameterError,
    PoolInfo,
    PoolRef,
    PrimaryStorageDriver,
    ResourceUnavailableError,
    SnapshotBackup,
    TemplateRef,
    UnsupportedError,
    VolumeSpec,
    hookimpl,
)

from .state import SimulatorState

GiB = 1024**3
DEFAULT_TEMPLATE_SIZE = 2 * GiB

#: files on simulated image stores (templates, ISOs, snapshot backups)
STORE_SCHEMA = """
CREATE TABLE IF NOT EXISTS sim_store_file (
    store_url TEXT NOT NULL, path TEXT NOT NULL, size INTEGER NOT NULL, PRIMARY KEY (store_url, path));
"""


def _capacity(url: str) -> int:
    parsed = urlparse(url)
    if parsed.scheme != "sim" or not parsed.netloc:
        raise InvalidParameterError(f"simulator storage URL {url!r} must look like sim://<name>[?capacity=<GiB>]")
    try:
        gib = int(parse_qs(parsed.query).get("capacity", ["1024"])[-1])
    except ValueError:
        raise InvalidParameterError(f"simulator storage URL {url!r}: capacity must be a number of GiB") from None
    if gib <= 0:
        raise InvalidParameterError(f"simulator storage URL {url!r}: capacity must be positive")
    return gib * GiB


def _volume_path(pool: PoolRef, volume: VolumeSpec) -> str:
    # derived from the pool and the uuid alone: delete_volume(path=None) finds it again
    return f"{urlparse(pool.url).netloc}/{volume.uuid}.qcow2"


class SimulatorStorage(PrimaryStorageDriver, ImageStoreDriver):
    name = "simulator"
    url_schemes = ("sim",)
    capabilities = {"snapshots": True, "thin_provisioning": True, "volume_resize": True}

    def __init__(self, config=None):
        super().__init__(config)
        self.state = SimulatorState(self.config.get("state_file", ":memory:"))
        self._schema_of: SimulatorState | None = None

    @hookimpl
    def strato_configure(self, settings):
        if "state_file" not in self.config:
            self.state = SimulatorState(Path(settings.data_dir) / "simulator.sqlite")

    def _cursor(self):
        if self._schema_of is not self.state:
            self.state._connection().executescript(STORE_SCHEMA)
            self._schema_of = self.state
        return self.state.cursor()

    def store_files(self, store_url: str | None = None) -> dict[tuple[str, str], int]:
        """{(store url, path): size} of every simulated store file (for tests)."""
        with self._cursor() as cur:
            rows = cur.execute("SELECT store_url, path, size FROM sim_store_file").fetchall()
        return {(url, path): size for url, path, size in rows if store_url in (None, url)}

    def volumes(self) -> dict[str, tuple[str, int]]:
        """{path: (pool url, size)} of every simulated volume (for tests)."""
        with self._cursor() as cur:
            rows = cur.execute("SELECT path, pool_url, size FROM sim_volume").fetchall()
        return {path: (url, size) for path, url, size in rows}

    # -- primary storage ----------------------------------------------------

    def connect_pool(self, url, details) -> PoolInfo:
        return PoolInfo(capacity_bytes=_capacity(url), used_bytes=0)

    connect_store = connect_pool

    def pool_stats(self, pool: PoolRef) -> PoolInfo:
        with self._cursor() as cur:
            used = cur.execute("SELECT COALESCE(SUM(size), 0) FROM sim_volume WHERE pool_url = ?",
                               (pool.url,)).fetchone()[0]
        return PoolInfo(capacity_bytes=_capacity(pool.url), used_bytes=used)

    def create_volume(self, pool: PoolRef, volume: VolumeSpec, template: TemplateRef | None) -> str:
        path = _volume_path(pool, volume)
        with self._cursor() as cur:
            cur.execute("INSERT OR REPLACE INTO sim_volume (path, pool_url, size) VALUES (?, ?, ?)",
                        (path, pool.url, volume.size_bytes))
        return path

    def delete_volume(self, pool: PoolRef, volume: VolumeSpec) -> None:
        with self._cursor() as cur:
            cur.execute("DELETE FROM sim_volume WHERE path = ? AND pool_url = ?",
                        (volume.path or _volume_path(pool, volume), pool.url))

    def _size_of(self, cur, pool: PoolRef, volume: VolumeSpec) -> int:
        row = cur.execute("SELECT size FROM sim_volume WHERE path = ? AND pool_url = ?",
                          (volume.path or _volume_path(pool, volume), pool.url)).fetchone()
        if row is None:
            raise ResourceUnavailableError(f"simulated volume {volume.uuid} is not on pool {pool.name}")
        return row[0]

    def resize_volume(self, pool: PoolRef, volume: VolumeSpec, new_size_bytes: int) -> None:
        with self._cursor() as cur:
            current = self._size_of(cur, pool, volume)
            if new_size_bytes < current:
                raise InvalidParameterError("a volume can only grow; shrinking it would lose data")
            cur.execute("UPDATE sim_volume SET size = ? WHERE path = ? AND pool_url = ?",
                        (new_size_bytes, volume.path or _volume_path(pool, volume), pool.url))

    def backup_volume(self, pool: PoolRef, volume: VolumeSpec, store: PoolRef, snapshot_uuid: str, *,
                      account=0, running=False) -> SnapshotBackup:
        path = f"snapshots/{account}/{volume.uuid}/{snapshot_uuid}.qcow2"
        with self._cursor() as cur:
            size = self._size_of(cur, pool, volume)
            cur.execute("INSERT OR REPLACE INTO sim_store_file (store_url, path, size) VALUES (?, ?, ?)",
                        (store.url, path, size))
        return SnapshotBackup(path=path, physical_size_bytes=size, virtual_size_bytes=size)

    def restore_snapshot(self, pool: PoolRef, volume: VolumeSpec, store: PoolRef, backup_path: str) -> str:
        path = volume.path or _volume_path(pool, volume)
        with self._cursor() as cur:
            size = self._store_file(cur, store, backup_path)
            cur.execute("INSERT OR REPLACE INTO sim_volume (path, pool_url, size) VALUES (?, ?, ?)",
                        (path, pool.url, size))
        return path

    def copy_volume(self, source: PoolRef, volume: VolumeSpec, destination: PoolRef) -> str:
        path = f"{urlparse(destination.url).netloc}/{volume.uuid}.qcow2"
        with self._cursor() as cur:
            size = self._size_of(cur, source, volume)
            cur.execute("INSERT OR REPLACE INTO sim_volume (path, pool_url, size) VALUES (?, ?, ?)",
                        (path, destination.url, size))
        return path

    def template_from_volume(self, pool: PoolRef, volume: VolumeSpec, store: PoolRef,
                             template: TemplateRef) -> TemplateRef:
        path = f"template/{template.uuid}.qcow2"
        with self._cursor() as cur:
            size = self._size_of(cur, pool, volume)
            cur.execute("INSERT OR REPLACE INTO sim_store_file (store_url, path, size) VALUES (?, ?, ?)",
                        (store.url, path, size))
        template.install_path, template.size_bytes = path, size
        return template

    # -- image store --------------------------------------------------------

    def _store_file(self, cur, store: PoolRef, path: str | None) -> int:
        row = cur.execute("SELECT size FROM sim_store_file WHERE store_url = ? AND path = ?",
                          (store.url, path)).fetchone()
        if row is None:
            raise ResourceUnavailableError(f"{path} is not on simulated image store {store.name}")
        return row[0]

    def register_template(self, store: PoolRef, template: TemplateRef, progress) -> TemplateRef:
        progress(100)
        template.install_path = f"template/{template.uuid}.{template.format.lower()}"
        template.size_bytes = template.size_bytes or DEFAULT_TEMPLATE_SIZE
        with self._cursor() as cur:
            cur.execute("INSERT OR REPLACE INTO sim_store_file (store_url, path, size) VALUES (?, ?, ?)",
                        (store.url, template.install_path, template.size_bytes))
        return template

    def delete_template(self, store: PoolRef, template: TemplateRef) -> None:
        with self._cursor() as cur:
            cur.execute("DELETE FROM sim_store_file WHERE store_url = ? AND path = ?",
                        (store.url, template.install_path or f"template/{template.uuid}.{template.format.lower()}"))

    def delete_snapshot_backup(self, store: PoolRef, backup_path: str) -> None:
        with self._cursor() as cur:
            cur.execute("DELETE FROM sim_store_file WHERE store_url = ? AND path = ?", (store.url, backup_path))

    def template_from_snapshot(self, store: PoolRef, backup_path: str, template: TemplateRef) -> TemplateRef:
        path = f"template/{template.uuid}.qcow2"
        with self._cursor() as cur:
            size = self._store_file(cur, store, backup_path)
            cur.execute("INSERT OR REPLACE INTO sim_store_file (store_url, path, size) VALUES (?, ?, ?)",
                        (store.url, path, size))
        template.install_path, template.size_bytes = path, size
        return template

    def copy_template(self, store: PoolRef, template: TemplateRef, progress) -> TemplateRef:
        source = PoolRef(uuid="", name=template.store_url or "", url=template.store_url or "",
                         details=dict(template.store_details or {}))
        with self._cursor() as cur:
            # a template registered before the simulator kept store files has no row: its size stands
            row = cur.execute("SELECT size FROM sim_store_file WHERE store_url = ? AND path = ?",
                              (source.url, template.install_path)).fetchone()
            size = row[0] if row else (template.size_bytes or DEFAULT_TEMPLATE_SIZE)
            cur.execute("INSERT OR REPLACE INTO sim_store_file (store_url, path, size) VALUES (?, ?, ?)",
                        (store.url, template.install_path, size))
        progress(100)
        template.size_bytes = size
        return template

    def open_template(self, store: PoolRef, template: TemplateRef):
        raise UnsupportedError("the simulator's image store keeps no template data to download")
