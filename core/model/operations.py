"""The operational records: async jobs, events, global configuration and capacity."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, Resource, utcnow


class JobStatus:
    """``jobstatus`` as CloudStack reports it."""

    PENDING = 0
    SUCCEEDED = 1
    FAILED = 2


class AsyncJob(Resource, Base):
    """One async command. The row is committed before the work is queued, and is the truth."""

    __tablename__ = "async_job"

    command: Mapped[str] = mapped_column(String(255))
    #: the registered job handler that does the work (see core.jobs)
    handler: Mapped[str] = mapped_column(String(255))
    params: Mapped[dict] = mapped_column(default=dict)
    account_id: Mapped[int | None] = mapped_column(ForeignKey("account.id"))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    instance_type: Mapped[str | None] = mapped_column(String(64))
    instance_uuid: Mapped[str | None] = mapped_column(String(40), index=True)
    status: Mapped[int] = mapped_column(Integer, default=JobStatus.PENDING, index=True)
    result_code: Mapped[int] = mapped_column(Integer, default=0)
    result: Mapped[dict | None] = mapped_column(default=None)
    #: the management server that queued it and the worker that runs it
    queued_by: Mapped[str | None] = mapped_column(String(64))
    executor: Mapped[str | None] = mapped_column(String(64))
    heartbeat: Mapped[dt.datetime | None] = mapped_column(default=None)
    completed: Mapped[dt.datetime | None] = mapped_column(default=None)


class Event(Resource, Base):
    __tablename__ = "event"

    event_type: Mapped[str] = mapped_column(String(64), index=True)
    level: Mapped[str] = mapped_column(String(16), default="INFO")
    state: Mapped[str] = mapped_column(String(32), default="Completed")
    description: Mapped[str] = mapped_column(Text)
    account_id: Mapped[int | None] = mapped_column(ForeignKey("account.id"), index=True)
    domain_id: Mapped[int | None] = mapped_column(ForeignKey("domain.id"))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    resource_type: Mapped[str | None] = mapped_column(String(64))
    resource_uuid: Mapped[str | None] = mapped_column(String(40))
    start_id: Mapped[int | None] = mapped_column(Integer)
    archived: Mapped[bool] = mapped_column(default=False)


class Configuration(Base):
    """A global setting, CloudStack style (``listConfigurations``)."""

    __tablename__ = "configuration"

    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    category: Mapped[str] = mapped_column(String(64))
    value: Mapped[str | None] = mapped_column(Text)
    default_value: Mapped[str | None] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text)
    value_type: Mapped[str] = mapped_column(String(32), default="String")
    updated: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class CapacityType:
    """CloudStack's capacity type numbers."""

    MEMORY = 0
    CPU = 1
    STORAGE = 2
    STORAGE_ALLOCATED = 3

    NAMES = {MEMORY: "MEMORY", CPU: "CPU", STORAGE: "STORAGE", STORAGE_ALLOCATED: "STORAGE_ALLOCATED"}


class Capacity(Base):
    """Allocated and total capacity of one host (CPU MHz, memory bytes) or pool (bytes).

    ``used`` changes only by conditional UPDATE statements in
    ``core.orchestration.capacity``, which is what keeps concurrent deploys from over-committing.
    """

    __tablename__ = "capacity"
    __table_args__ = (
        UniqueConstraint("host_id", "capacity_type"),
        UniqueConstraint("pool_id", "capacity_type"),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    capacity_type: Mapped[int] = mapped_column(Integer)
    zone_id: Mapped[int] = mapped_column(ForeignKey("zone.id"))
    pod_id: Mapped[int | None] = mapped_column(ForeignKey("pod.id"))
    cluster_id: Mapped[int | None] = mapped_column(ForeignKey("cluster.id"), index=True)
    host_id: Mapped[int | None] = mapped_column(ForeignKey("host.id"))
    pool_id: Mapped[int | None] = mapped_column(ForeignKey("storage_pool.id"))
    total: Mapped[int] = mapped_column(BigInteger, default=0)
    used: Mapped[int] = mapped_column(BigInteger, default=0)
