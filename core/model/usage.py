"""Usage accounting: the usage events every resource change writes, and the usage
records (per account, per period) the usage job makes of them."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Double, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base


class UsageEvent(Base):
    """One change that usage is charged by (CloudStack's ``usage_event``), at ``created``.

    References to offerings, templates and zones are kept as public ids, so a record can
    still name them after they are deleted.
    """

    __tablename__ = "usage_event"
    __table_args__ = (Index("ix_usage_event_resource", "resource_type", "resource_uuid", "created"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    event_type: Mapped[str] = mapped_column(String(64))
    created: Mapped[dt.datetime] = mapped_column(index=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"), index=True)
    domain_id: Mapped[int] = mapped_column(ForeignKey("domain.id"))
    zone_uuid: Mapped[str | None] = mapped_column(String(40))
    #: VirtualMachine, Volume, Template, Snapshot, IpAddress or Network
    resource_type: Mapped[str] = mapped_column(String(32))
    resource_uuid: Mapped[str] = mapped_column(String(40))
    resource_name: Mapped[str | None] = mapped_column(String(255))
    offering_uuid: Mapped[str | None] = mapped_column(String(40))
    template_uuid: Mapped[str | None] = mapped_column(String(40))
    #: bytes (volumes, templates, snapshots)
    size: Mapped[int | None] = mapped_column(BigInteger)
    bytes_sent: Mapped[int] = mapped_column(BigInteger, default=0)
    bytes_received: Mapped[int] = mapped_column(BigInteger, default=0)
    #: what a record needs besides (cpu number/speed, memory, hypervisor, vm uuid)
    details: Mapped[dict] = mapped_column(default=dict)


class UsageRecord(Base):
    """What one account used of one resource in one period (``listUsageRecords``).

    ``raw_usage`` is hours for the time-based types and bytes for network usage;
    ``seconds`` keeps the exact duration the hours were made from.
    """

    __tablename__ = "usage_record"
    __table_args__ = (Index("ix_usage_record_period", "start_date", "end_date"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"), index=True)
    domain_id: Mapped[int] = mapped_column(ForeignKey("domain.id"))
    zone_uuid: Mapped[str | None] = mapped_column(String(40))
    usage_type: Mapped[int] = mapped_column(Integer, index=True)
    description: Mapped[str] = mapped_column(Text)
    usage_display: Mapped[str] = mapped_column(String(255))
    raw_usage: Mapped[float] = mapped_column(Double)
    seconds: Mapped[int] = mapped_column(BigInteger, default=0)
    resource_uuid: Mapped[str] = mapped_column(String(40))
    resource_name: Mapped[str | None] = mapped_column(String(255))
    vm_uuid: Mapped[str | None] = mapped_column(String(40))
    offering_uuid: Mapped[str | None] = mapped_column(String(40))
    template_uuid: Mapped[str | None] = mapped_column(String(40))
    type: Mapped[str | None] = mapped_column(String(64))
    size: Mapped[int | None] = mapped_column(BigInteger)
    cpu_number: Mapped[int | None] = mapped_column(Integer)
    cpu_speed: Mapped[int | None] = mapped_column(Integer)
    memory: Mapped[int | None] = mapped_column(Integer)
    start_date: Mapped[dt.datetime]
    end_date: Mapped[dt.datetime]


class UsageNetworkCounter(Base):
    """The NIC byte counters last read from a VM's hypervisor, so the next reading becomes a delta."""

    __tablename__ = "usage_network_counter"

    vm_uuid: Mapped[str] = mapped_column(String(40), primary_key=True)
    bytes_sent: Mapped[int] = mapped_column(BigInteger, default=0)
    bytes_received: Mapped[int] = mapped_column(BigInteger, default=0)
    read_at: Mapped[dt.datetime]


class UsageJob(Base):
    """One run of the usage job: the periods it made records for (the periodic pass starts
    where the last run ended)."""

    __tablename__ = "usage_job"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    start_date: Mapped[dt.datetime]
    end_date: Mapped[dt.datetime] = mapped_column(index=True)
    records: Mapped[int] = mapped_column(Integer, default=0)
    created: Mapped[dt.datetime]
