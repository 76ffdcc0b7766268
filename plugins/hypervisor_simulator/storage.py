"""Simulated primary storage and image store: capacity and files are bookkeeping only.

Pools and stores are added with ``sim://<name>[?capacity=<GiB>]`` (default 1024 GiB).
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
    TemplateRef,
    VolumeSpec,
    hookimpl,
)

from .state import SimulatorState

GiB = 1024**3
DEFAULT_TEMPLATE_SIZE = 2 * GiB


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


class SimulatorStorage(PrimaryStorageDriver, ImageStoreDriver):
    name = "simulator"
    url_schemes = ("sim",)
    capabilities = {"snapshots": False, "thin_provisioning": True}

    def __init__(self, config=None):
        super().__init__(config)
        self.state = SimulatorState(self.config.get("state_file", ":memory:"))

    @hookimpl
    def strato_configure(self, settings):
        if "state_file" not in self.config:
            self.state = SimulatorState(Path(settings.data_dir) / "simulator.sqlite")

    def connect_pool(self, url, details) -> PoolInfo:
        return PoolInfo(capacity_bytes=_capacity(url), used_bytes=0)

    connect_store = connect_pool

    def pool_stats(self, pool: PoolRef) -> PoolInfo:
        with self.state.cursor() as cur:
            used = cur.execute("SELECT COALESCE(SUM(size), 0) FROM sim_volume WHERE pool_url = ?",
                               (pool.url,)).fetchone()[0]
        return PoolInfo(capacity_bytes=_capacity(pool.url), used_bytes=used)

    def create_volume(self, pool: PoolRef, volume: VolumeSpec, template: TemplateRef | None) -> str:
        path = f"{volume.uuid}.qcow2"
        with self.state.cursor() as cur:
            cur.execute("INSERT OR REPLACE INTO sim_volume (path, pool_url, size) VALUES (?, ?, ?)",
                        (path, pool.url, volume.size_bytes))
        return path

    def delete_volume(self, pool: PoolRef, volume: VolumeSpec) -> None:
        with self.state.cursor() as cur:
            cur.execute("DELETE FROM sim_volume WHERE path = ?", (volume.path or f"{volume.uuid}.qcow2",))

    def resize_volume(self, pool: PoolRef, volume: VolumeSpec, new_size_bytes: int) -> None:
        if new_size_bytes < volume.size_bytes:
            raise InvalidParameterError("a volume can only grow; shrinking it would lose data")
        with self.state.cursor() as cur:
            cur.execute("UPDATE sim_volume SET size = ? WHERE path = ?", (new_size_bytes, volume.path))

    def register_template(self, store: PoolRef, template: TemplateRef, progress) -> TemplateRef:
        progress(100)
        template.install_path = f"template/{template.uuid}.{template.format.lower()}"
        template.size_bytes = template.size_bytes or DEFAULT_TEMPLATE_SIZE
        return template

    def delete_template(self, store: PoolRef, template: TemplateRef) -> None:
        """Nothing is stored; nothing to remove."""
