"""Virtual machines and their volumes."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import Base, Bytes, Resource, utcnow


class VirtualMachine(Resource, Base):
    """A guest. ``state`` moves only through ``core.orchestration.vm_states``,
    which checks ``version`` so two workers never move one VM at once."""

    __tablename__ = "vm_instance"

    name: Mapped[str] = mapped_column(String(255))
    display_name: Mapped[str] = mapped_column(String(255))
    #: the name on the hypervisor, CloudStack's i-<account id>-<vm id>-VM
    instance_name: Mapped[str | None] = mapped_column(String(255), unique=True)
    vm_type: Mapped[str] = mapped_column(String(32), default="User")
    state: Mapped[str] = mapped_column(String(32), default="Stopped", index=True)
    version: Mapped[int] = mapped_column(Integer, default=0)
    power_state: Mapped[str] = mapped_column(String(32), default="PowerOff")
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"), index=True)
    domain_id: Mapped[int] = mapped_column(ForeignKey("domain.id"), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    zone_id: Mapped[int] = mapped_column(ForeignKey("zone.id"))
    pod_id: Mapped[int | None] = mapped_column(ForeignKey("pod.id"))
    host_id: Mapped[int | None] = mapped_column(ForeignKey("host.id"), index=True)
    last_host_id: Mapped[int | None] = mapped_column(ForeignKey("host.id"))
    service_offering_id: Mapped[int] = mapped_column(ForeignKey("service_offering.id"))
    template_id: Mapped[int] = mapped_column(ForeignKey("template.id"))
    hypervisor: Mapped[str | None] = mapped_column(String(32))
    ha_enabled: Mapped[bool] = mapped_column(default=False)
    group_name: Mapped[str | None] = mapped_column(String(255))
    user_data: Mapped[str | None] = mapped_column(Text)
    password: Mapped[str | None] = mapped_column(String(255))
    #: the CPU and memory reserved on ``host_id`` while Starting/Running/Stopping/Migrating
    reserved_cpu: Mapped[int] = mapped_column(default=0)
    reserved_memory: Mapped[int] = Bytes()
    updated: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    #: driver-private data (console address and the like)
    details: Mapped[dict] = mapped_column(default=dict)

    account: Mapped["Account"] = relationship()  # noqa: F821
    domain: Mapped["Domain"] = relationship()  # noqa: F821
    zone: Mapped["Zone"] = relationship()  # noqa: F821
    host: Mapped["Host | None"] = relationship(foreign_keys=[host_id])  # noqa: F821
    service_offering: Mapped["ServiceOffering"] = relationship()  # noqa: F821
    template: Mapped["Template"] = relationship()  # noqa: F821
    nics: Mapped[list[Nic]] = relationship(back_populates="vm", order_by="Nic.device_id")
    volumes: Mapped[list[Volume]] = relationship(back_populates="vm", order_by="Volume.device_id")


class Nic(Resource, Base):
    __tablename__ = "nic"
    # One address per network: the constraint, not a read-then-write, is what makes
    # concurrent allocations safe.
    __table_args__ = (UniqueConstraint("network_id", "ip_address"),)

    vm_id: Mapped[int] = mapped_column(ForeignKey("vm_instance.id"), index=True)
    network_id: Mapped[int] = mapped_column(ForeignKey("network.id"))
    device_id: Mapped[int] = mapped_column(default=0)
    is_default: Mapped[bool] = mapped_column(default=True)
    mac_address: Mapped[str] = mapped_column(String(17), unique=True)
    ip_address: Mapped[str | None] = mapped_column(String(64))
    netmask: Mapped[str | None] = mapped_column(String(64))
    gateway: Mapped[str | None] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(32), default="Allocated")

    vm: Mapped[VirtualMachine] = relationship(back_populates="nics")
    network: Mapped["Network"] = relationship()  # noqa: F821


class VolumeState:
    """CloudStack's Volume.State values used here."""

    ALLOCATED = "Allocated"
    CREATING = "Creating"
    READY = "Ready"
    RESIZING = "Resizing"
    MIGRATING = "Migrating"
    DESTROY = "Destroy"
    EXPUNGING = "Expunging"
    EXPUNGED = "Expunged"


class Volume(Resource, Base):
    __tablename__ = "volume"

    name: Mapped[str] = mapped_column(String(255))
    vm_id: Mapped[int | None] = mapped_column(ForeignKey("vm_instance.id"), index=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"), index=True)
    domain_id: Mapped[int] = mapped_column(ForeignKey("domain.id"))
    zone_id: Mapped[int] = mapped_column(ForeignKey("zone.id"))
    pool_id: Mapped[int | None] = mapped_column(ForeignKey("storage_pool.id"))
    volume_type: Mapped[str] = mapped_column(String(32), default="ROOT")  # ROOT | DATADISK
    device_id: Mapped[int | None] = mapped_column(default=0)
    size: Mapped[int] = Bytes()
    state: Mapped[str] = mapped_column(String(32), default=VolumeState.ALLOCATED)
    format: Mapped[str] = mapped_column(String(32), default="QCOW2")
    path: Mapped[str | None] = mapped_column(String(2048))
    template_id: Mapped[int | None] = mapped_column(ForeignKey("template.id"))
    disk_offering_id: Mapped[int | None] = mapped_column(ForeignKey("disk_offering.id"))
    version: Mapped[int] = mapped_column(Integer, default=0)

    vm: Mapped[VirtualMachine | None] = relationship(back_populates="volumes")
    pool: Mapped["StoragePool | None"] = relationship()  # noqa: F821
