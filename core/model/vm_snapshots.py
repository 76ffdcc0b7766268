"""VM snapshots: every disk of a VM, and its memory when it ran (CloudStack's vm_snapshots)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import Base, Resource, utcnow


class VmSnapshotState:
    """CloudStack's VMSnapshot.State values."""

    ALLOCATED = "Allocated"
    CREATING = "Creating"
    READY = "Ready"
    REVERTING = "Reverting"
    EXPUNGING = "Expunging"
    ERROR = "Error"
    REMOVED = "Removed"


class VmSnapshotType:
    DISK = "Disk"
    DISK_AND_MEMORY = "DiskAndMemory"


class VmSnapshot(Resource, Base):
    """One VM snapshot. ``name`` is what the hypervisor knows it by (unique among the VM's
    live snapshots); ``display_name`` is the user's. ``state`` moves by guarded UPDATEs on
    ``version`` (``core.orchestration.vm_snapshots``), so two jobs never move one snapshot."""

    __tablename__ = "vm_snapshot"

    name: Mapped[str] = mapped_column(String(255))
    display_name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(String(255))
    vm_id: Mapped[int] = mapped_column(ForeignKey("vm_instance.id"), index=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"), index=True)
    domain_id: Mapped[int] = mapped_column(ForeignKey("domain.id"), index=True)
    #: the VM's offering when the snapshot was taken (a memory snapshot holds that much memory)
    service_offering_id: Mapped[int] = mapped_column(ForeignKey("service_offering.id"))
    snapshot_type: Mapped[str] = mapped_column(String(32), default=VmSnapshotType.DISK)
    state: Mapped[str] = mapped_column(String(32), default=VmSnapshotState.ALLOCATED, index=True)
    #: the snapshot that was current when this one was taken: the VM's disks descend from it
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("vm_snapshot.id"))
    #: the snapshot the VM's disks last started from (the last taken or reverted to)
    current: Mapped[bool] = mapped_column(default=False)
    version: Mapped[int] = mapped_column(Integer, default=0)
    updated: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    vm: Mapped["VirtualMachine"] = relationship()  # noqa: F821
    parent: Mapped["VmSnapshot | None"] = relationship(remote_side="VmSnapshot.id")
