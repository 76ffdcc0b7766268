"""The physical side: zones, pods, clusters, hosts, primary storage pools, image stores."""

from __future__ import annotations

from sqlalchemy import BigInteger, Float, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import Base, Bytes, Resource


class AllocationState:
    ENABLED = "Enabled"
    DISABLED = "Disabled"


class Zone(Resource, Base):
    __tablename__ = "zone"

    name: Mapped[str] = mapped_column(String(255), unique=True)
    description: Mapped[str | None] = mapped_column(String(1024))
    network_type: Mapped[str] = mapped_column(String(32), default="Basic")  # Basic | Advanced
    dns1: Mapped[str | None] = mapped_column(String(64))
    dns2: Mapped[str | None] = mapped_column(String(64))
    internal_dns1: Mapped[str | None] = mapped_column(String(64))
    internal_dns2: Mapped[str | None] = mapped_column(String(64))
    guest_cidr: Mapped[str | None] = mapped_column(String(64))
    domain_name: Mapped[str | None] = mapped_column(String(255))
    allocation_state: Mapped[str] = mapped_column(String(32), default=AllocationState.ENABLED)
    local_storage_enabled: Mapped[bool] = mapped_column(default=False)
    security_groups_enabled: Mapped[bool] = mapped_column(default=False)


class Pod(Resource, Base):
    __tablename__ = "pod"

    name: Mapped[str] = mapped_column(String(255))
    zone_id: Mapped[int] = mapped_column(ForeignKey("zone.id"))
    gateway: Mapped[str] = mapped_column(String(64))
    netmask: Mapped[str] = mapped_column(String(64))
    start_ip: Mapped[str] = mapped_column(String(64))
    end_ip: Mapped[str | None] = mapped_column(String(64))
    allocation_state: Mapped[str] = mapped_column(String(32), default=AllocationState.ENABLED)

    zone: Mapped[Zone] = relationship()


class Cluster(Resource, Base):
    __tablename__ = "cluster"

    name: Mapped[str] = mapped_column(String(255))
    pod_id: Mapped[int] = mapped_column(ForeignKey("pod.id"))
    zone_id: Mapped[int] = mapped_column(ForeignKey("zone.id"))
    hypervisor: Mapped[str] = mapped_column(String(32))
    cluster_type: Mapped[str] = mapped_column(String(32), default="CloudManaged")
    allocation_state: Mapped[str] = mapped_column(String(32), default=AllocationState.ENABLED)
    managed_state: Mapped[str] = mapped_column(String(32), default="Managed")
    #: per-cluster overprovisioning; CloudStack's cpuOvercommitRatio / memoryOvercommitRatio
    cpu_overprovisioning: Mapped[float] = mapped_column(Float, default=1.0)
    memory_overprovisioning: Mapped[float] = mapped_column(Float, default=1.0)

    pod: Mapped[Pod] = relationship()
    zone: Mapped[Zone] = relationship()


class HostStatus:
    """CloudStack's host ``state`` (connection status)."""

    UP = "Up"
    DOWN = "Down"
    ALERT = "Alert"
    DISCONNECTED = "Disconnected"
    CONNECTING = "Connecting"


class ResourceState:
    """CloudStack's host ``resourcestate`` (what the admin asked for)."""

    ENABLED = "Enabled"
    DISABLED = "Disabled"
    PREPARE_FOR_MAINTENANCE = "PrepareForMaintenance"
    MAINTENANCE = "Maintenance"
    ERROR_IN_MAINTENANCE = "ErrorInMaintenance"


class Host(Resource, Base):
    __tablename__ = "host"

    name: Mapped[str] = mapped_column(String(255))
    host_type: Mapped[str] = mapped_column(String(32), default="Routing")
    zone_id: Mapped[int] = mapped_column(ForeignKey("zone.id"), index=True)
    pod_id: Mapped[int] = mapped_column(ForeignKey("pod.id"))
    cluster_id: Mapped[int] = mapped_column(ForeignKey("cluster.id"), index=True)
    hypervisor: Mapped[str] = mapped_column(String(32))
    hypervisor_version: Mapped[str | None] = mapped_column(String(64))
    url: Mapped[str] = mapped_column(String(1024))
    status: Mapped[str] = mapped_column(String(32), default=HostStatus.UP)
    resource_state: Mapped[str] = mapped_column(String(32), default=ResourceState.ENABLED)
    cpu_sockets: Mapped[int] = mapped_column(default=1)
    cpu_cores: Mapped[int] = mapped_column(default=1)
    cpu_speed: Mapped[int] = mapped_column(default=0)  # MHz per core
    memory: Mapped[int] = Bytes()
    #: comma-separated host tags, matched against service offerings' host tag
    host_tags: Mapped[str | None] = mapped_column(String(1024))
    capabilities: Mapped[str | None] = mapped_column(String(1024))
    last_pinged: Mapped[int] = mapped_column(BigInteger, default=0)
    #: driver-private data (libvirt URI, managed object refs); never shown in the API
    details: Mapped[dict] = mapped_column(default=dict)

    cluster: Mapped[Cluster] = relationship()
    pod: Mapped[Pod] = relationship()
    zone: Mapped[Zone] = relationship()

    @property
    def tag_list(self) -> list[str]:
        return [t.strip() for t in (self.host_tags or "").split(",") if t.strip()]


class StoragePool(Resource, Base):
    __tablename__ = "storage_pool"

    name: Mapped[str] = mapped_column(String(255))
    zone_id: Mapped[int] = mapped_column(ForeignKey("zone.id"))
    pod_id: Mapped[int | None] = mapped_column(ForeignKey("pod.id"))
    cluster_id: Mapped[int | None] = mapped_column(ForeignKey("cluster.id"))
    scope: Mapped[str] = mapped_column(String(32), default="CLUSTER")  # CLUSTER | ZONE | HOST
    hypervisor: Mapped[str | None] = mapped_column(String(32))
    url: Mapped[str] = mapped_column(String(1024))
    #: the storage plugin that serves this pool
    provider: Mapped[str] = mapped_column(String(64))
    pool_type: Mapped[str] = mapped_column(String(64), default="NetworkFilesystem")
    status: Mapped[str] = mapped_column(String(32), default="Up")
    capacity_bytes: Mapped[int] = Bytes()
    used_bytes: Mapped[int] = Bytes()
    tags: Mapped[str | None] = mapped_column(String(1024))
    overprovisioning: Mapped[float] = mapped_column(Float, default=2.0)
    details: Mapped[dict] = mapped_column(default=dict)

    zone: Mapped[Zone] = relationship()
    pod: Mapped[Pod | None] = relationship()
    cluster: Mapped[Cluster | None] = relationship()

    @property
    def tag_list(self) -> list[str]:
        return [t.strip() for t in (self.tags or "").split(",") if t.strip()]


class ImageStore(Resource, Base):
    __tablename__ = "image_store"

    name: Mapped[str] = mapped_column(String(255))
    zone_id: Mapped[int | None] = mapped_column(ForeignKey("zone.id"))
    url: Mapped[str] = mapped_column(String(1024))
    provider: Mapped[str] = mapped_column(String(64))
    protocol: Mapped[str] = mapped_column(String(32), default="nfs")
    role: Mapped[str] = mapped_column(String(32), default="Image")
    read_only: Mapped[bool] = mapped_column(default=False)
    capacity_bytes: Mapped[int] = Bytes()
    used_bytes: Mapped[int] = Bytes()
    details: Mapped[dict] = mapped_column(default=dict)
    notes: Mapped[str | None] = mapped_column(Text)

    zone: Mapped[Zone | None] = relationship()
