"""Volume snapshots (backed up to an image store), their recurring policies, and the
download links ``extractTemplate`` hands out."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import Base, Bytes, Resource, new_uuid, utcnow


class SnapshotState:
    """CloudStack's Snapshot.State values Strato uses."""

    ALLOCATED = "Allocated"
    BACKING_UP = "BackingUp"
    BACKED_UP = "BackedUp"
    DESTROYING = "Destroying"
    DESTROYED = "Destroyed"
    ERROR = "Error"


class IntervalType:
    """CloudStack's DateUtil.IntervalType; ``ORDER`` gives the numbers its API reports."""

    HOURLY = "HOURLY"
    DAILY = "DAILY"
    WEEKLY = "WEEKLY"
    MONTHLY = "MONTHLY"

    ORDER = (HOURLY, DAILY, WEEKLY, MONTHLY)


class Snapshot(Resource, Base):
    """A point-in-time copy of a volume on an image store. ``state`` and ``version`` move
    together through ``core.orchestration.snapshots`` (a guarded UPDATE per step)."""

    __tablename__ = "snapshot"

    name: Mapped[str] = mapped_column(String(255))
    volume_id: Mapped[int] = mapped_column(ForeignKey("volume.id"), index=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"), index=True)
    domain_id: Mapped[int] = mapped_column(ForeignKey("domain.id"))
    zone_id: Mapped[int] = mapped_column(ForeignKey("zone.id"))
    #: the recurring policy that took it; None for a manual snapshot (or a deleted policy's)
    policy_id: Mapped[int | None] = mapped_column(ForeignKey("snapshot_policy.id", ondelete="SET NULL"))
    #: MANUAL, or the interval type (HOURLY, DAILY, WEEKLY, MONTHLY) of the policy that took it
    snapshot_type: Mapped[str] = mapped_column(String(16), default="MANUAL")
    #: ROOT or DATADISK: the volume's type when the snapshot was taken
    volume_type: Mapped[str] = mapped_column(String(32))
    hypervisor: Mapped[str | None] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(32), default=SnapshotState.ALLOCATED, index=True)
    version: Mapped[int] = mapped_column(Integer, default=0)
    #: the volume's virtual size when taken, and the backup's size on the store
    size: Mapped[int] = Bytes()
    physical_size: Mapped[int] = Bytes()
    store_id: Mapped[int | None] = mapped_column(ForeignKey("image_store.id"))
    #: the backup's path relative to the store, as the storage driver reported it
    backup_path: Mapped[str | None] = mapped_column(String(2048))

    volume: Mapped["Volume"] = relationship()  # noqa: F821
    store: Mapped["ImageStore | None"] = relationship()  # noqa: F821


class SnapshotPolicy(Base):
    """A recurring snapshot of one volume: at most one policy per volume and interval type,
    as CloudStack (creating another of the same type updates it). Rows are deleted outright.

    ``next_run`` (naive UTC) is when the periodic pass takes the next snapshot; it is moved
    forward by a conditional UPDATE, so with several management servers one of them runs it.
    """

    __tablename__ = "snapshot_policy"
    __table_args__ = (UniqueConstraint("volume_id", "interval_type"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    uuid: Mapped[str] = mapped_column(String(40), unique=True, default=new_uuid)
    created: Mapped[dt.datetime] = mapped_column(default=utcnow)
    volume_id: Mapped[int] = mapped_column(ForeignKey("volume.id"), index=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"), index=True)
    domain_id: Mapped[int] = mapped_column(ForeignKey("domain.id"))
    interval_type: Mapped[str] = mapped_column(String(16))
    #: CloudStack's schedule: MM (hourly), MM:HH (daily), MM:HH:DD (weekly 1-7 from Sunday, monthly 1-28)
    schedule: Mapped[str] = mapped_column(String(32))
    timezone: Mapped[str] = mapped_column(String(64))
    max_snaps: Mapped[int] = mapped_column(Integer)
    display: Mapped[bool] = mapped_column(default=True)
    next_run: Mapped[dt.datetime] = mapped_column(index=True)

    volume: Mapped["Volume"] = relationship()  # noqa: F821


class ImageExtract(Base):
    """A download link made by ``extractTemplate``: the URL carries a random token, of
    which only the SHA-256 is kept; the link serves one template copy until ``expires``."""

    __tablename__ = "image_extract"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    #: CloudStack's ``extractId``
    uuid: Mapped[str] = mapped_column(String(40), unique=True, default=new_uuid)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    template_id: Mapped[int] = mapped_column(ForeignKey("template.id"), index=True)
    store_id: Mapped[int] = mapped_column(ForeignKey("image_store.id"))
    account_id: Mapped[int | None] = mapped_column(ForeignKey("account.id"))
    created: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires: Mapped[dt.datetime] = mapped_column(index=True)


from .compute import Volume  # noqa: E402,F401  (for the relationships above)
from .infrastructure import ImageStore  # noqa: E402,F401
